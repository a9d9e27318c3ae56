"""The text-CNN: shapes, max-over-time checked by hand, padding ignored, save/load."""

from __future__ import annotations

import torch

from lookalike.retrieval.text.classifier import TextClassifier
from lookalike.retrieval.text.cnn import TextCNN, TextCNNConfig, max_over_time
from lookalike.retrieval.text.tokenizer import TextTokenizer


def test_max_over_time_by_hand() -> None:
    maps = torch.tensor([[[1.0, 5.0, 2.0, 9.0], [0.0, -1.0, 3.0, 7.0]],
                         [[4.0, 1.0, 8.0, 6.0], [2.0, 2.0, 2.0, 9.0]]])
    # Text 0 has 4 tokens, text 1 has 3: width 2 -> 3 and 2 valid windows.
    pooled = max_over_time(maps, torch.tensor([4, 3]), width=2)
    assert pooled.tolist() == [[5.0, 3.0], [4.0, 2.0]]
    # A text shorter than the window keeps its first one.
    assert max_over_time(maps, torch.tensor([1, 1]), width=3).tolist() == [[1.0, 0.0],
                                                                            [4.0, 2.0]]


def test_shapes_and_padding_does_not_change_the_answer() -> None:
    torch.manual_seed(0)
    model = TextCNN(TextCNNConfig(vocab_size=50, classes=4, embed_dim=8, widths=(2, 3),
                                  channels=5)).eval()
    ids = torch.randint(1, 50, (3, 7))
    features = model(ids)
    assert features.shape == (3, 10)
    assert model.logits(features).shape == (3, 4)
    padded = torch.cat([ids, torch.zeros(3, 6, dtype=torch.int64)], dim=1)
    assert torch.allclose(model(padded), features)
    assert model(torch.tensor([[7]])).shape == (1, 10)  # shorter than the widest filter
    probabilities = model.probabilities(ids)
    assert torch.allclose(probabilities.sum(dim=1), torch.ones(3))


def test_a_classifier_file_round_trips() -> None:
    texts = ["the match ended in a draw", "shares fell on the market", "a new phone chip"]
    tokenizer = TextTokenizer.train(texts * 3, vocab_size=100, max_length=16, min_length=3)
    model = TextCNN(TextCNNConfig(vocab_size=tokenizer.vocab_size, classes=3, embed_dim=8,
                                  channels=4))
    classifier = TextClassifier(tokenizer, model, ["business", "sport", "tech"])
    again = TextClassifier.from_bytes(classifier.to_bytes())
    assert again.classes == classifier.classes
    assert (again.probabilities(texts) == classifier.probabilities(texts)).all()
    assert again.predict(["chip"])[0].topic in classifier.classes
