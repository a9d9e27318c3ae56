"""A short text-CNN run on a BBC News subset beats the majority class by a wide margin."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lookalike.retrieval.text.baselines import MajorityClass
from lookalike.retrieval.text.classifier import EncodedTexts
from lookalike.retrieval.text.corpus import read_corpus, stratified_split
from lookalike.retrieval.text.metrics import accuracy
from lookalike.retrieval.text.training import (
    TextTrainSettings,
    accuracy_validator,
    build_model,
    build_tokenizer,
    predicted,
    trainer_config,
)
from lookalike.retrieval.training.trainer import fit


def test_corpus_reads_five_sorted_topics(bbc_dir: Path) -> None:
    data = read_corpus(bbc_dir)
    assert data.classes == ["business", "entertainment", "politics", "sports", "tech"]
    assert len(data.texts) == 2225
    train, test = stratified_split(data.labels, test_fraction=0.2, seed=0)
    assert len(test) == 445 and not set(train) & set(test)
    assert np.bincount(data.labels[test]).min() >= 77  # every topic held out in proportion


def test_short_training_beats_the_majority_class(bbc_dir: Path, tmp_path: Path) -> None:
    data = read_corpus(bbc_dir)
    train_at, test_at = stratified_split(data.labels, test_fraction=0.2, seed=0)
    train, test = data.subset(train_at), data.subset(test_at)
    # Short: the first 48 tokens of each article, a small network, 4 epochs.
    settings = TextTrainSettings(vocab_size=5000, max_length=48, embed_dim=32, channels=32,
                                 epochs=4, batch_size=32, lr=1e-2)
    tokenizer = build_tokenizer(train.texts, settings)
    model = build_model(tokenizer, len(data.classes), settings)
    held_out = EncodedTexts(tokenizer, test.texts, test.labels)
    records = fit(model, EncodedTexts(tokenizer, train.texts, train.labels),
                  config=trainer_config(settings), checkpoint=tmp_path / "c.pt",
                  validate=accuracy_validator(held_out))
    cnn = accuracy(test.labels, predicted(model, held_out))
    majority = MajorityClass()
    majority.fit(train.texts, train.labels)
    floor = accuracy(test.labels, majority.predict(test.texts))
    assert records[-1].val_map == cnn
    assert floor < 0.3
    assert cnn > floor + 0.35, (cnn, floor)
