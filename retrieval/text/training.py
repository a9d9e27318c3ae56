"""How a text-CNN is trained: its settings, a seeded tokenizer and model, and the trainer's
configuration (retrieval.training.trainer.fit runs the epochs, checkpoints and resumes)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from lookalike.retrieval.text.classifier import EncodedTexts
from lookalike.retrieval.text.cnn import TextCNN, TextCNNConfig
from lookalike.retrieval.text.tokenizer import TextTokenizer
from lookalike.retrieval.training.trainer import TrainConfig


@dataclass(frozen=True)
class TextTrainSettings:
    """Tokenizer, network and optimisation settings of one text-CNN training run."""

    vocab_size: int = 20_000
    max_length: int = 400
    embed_dim: int = 128
    widths: tuple[int, ...] = (3, 4, 5)
    channels: int = 100
    dropout: float = 0.5
    epochs: int = 8
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 1e-4
    seed: int = 0


def build_tokenizer(texts: Sequence[str], settings: TextTrainSettings) -> TextTokenizer:
    return TextTokenizer.train(texts, vocab_size=settings.vocab_size,
                               max_length=settings.max_length, min_length=max(settings.widths))


def build_model(tokenizer: TextTokenizer, classes: int, settings: TextTrainSettings) -> TextCNN:
    """A text-CNN initialised from the run's seed (the same seed gives the same weights)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(settings.seed)
        return TextCNN(TextCNNConfig(
            vocab_size=tokenizer.vocab_size, classes=classes, embed_dim=settings.embed_dim,
            widths=settings.widths, channels=settings.channels, dropout=settings.dropout))


def trainer_config(settings: TextTrainSettings) -> TrainConfig:
    """Cross-entropy over the topics on shuffled batches."""
    return TrainConfig(epochs=settings.epochs, batch_size=settings.batch_size, lr=settings.lr,
                       weight_decay=settings.weight_decay, loss="softmax", seed=settings.seed)


def predicted(model: TextCNN, data: EncodedTexts, *, batch_size: int = 128) -> np.ndarray:
    """The most probable class of every encoded text."""
    out = [model.probabilities(data.ids[start:start + batch_size]).argmax(dim=1)
           for start in range(0, len(data), batch_size)]
    return torch.cat(out).numpy()


def accuracy_validator(data: EncodedTexts) -> Callable[[nn.Module], float]:
    """validate(model) for the trainer: accuracy on the held-out texts."""
    truth = np.asarray(data.labels)

    def validate(model: nn.Module) -> float:
        assert isinstance(model, TextCNN)
        result = float((predicted(model, data) == truth).mean())
        model.train()
        return result

    return validate
