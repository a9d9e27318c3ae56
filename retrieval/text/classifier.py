"""A trained topic classifier: tokenizer + text-CNN + class names, saved as one file."""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from lookalike.retrieval.errors import CheckpointCorrupt
from lookalike.retrieval.text.cnn import TextCNN, TextCNNConfig
from lookalike.retrieval.text.tokenizer import TextTokenizer

FILE_FORMAT = 1


@dataclass(frozen=True)
class Prediction:
    topic: str
    score: float
    scores: dict[str, float]


class EncodedTexts(Dataset[tuple[Tensor, int]]):
    """Texts encoded once to fixed-length ids, with their labels (what the trainer reads)."""

    def __init__(self, tokenizer: TextTokenizer, texts: Sequence[str], labels: np.ndarray) -> None:
        self.ids = tokenizer.encode(texts, length=tokenizer.max_length)
        self.labels = [int(label) for label in labels]

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        return self.ids[index], self.labels[index]


class TextClassifier:
    """Texts -> topic probabilities, in batches."""

    def __init__(self, tokenizer: TextTokenizer, model: TextCNN, classes: Sequence[str]) -> None:
        if model.config.classes != len(classes):
            raise CheckpointCorrupt(f"the model has {model.config.classes} outputs for "
                                    f"{len(classes)} classes")
        self.tokenizer = tokenizer
        self.model = model.eval()
        self.classes = list(classes)

    def probabilities(self, texts: Sequence[str], *, batch_size: int = 64) -> np.ndarray:
        """(N, classes) float32 probabilities."""
        out = [self.model.probabilities(self.tokenizer.encode(texts[start:start + batch_size]))
               for start in range(0, len(texts), batch_size)]
        if not out:
            return np.zeros((0, len(self.classes)), dtype=np.float32)
        return torch.cat(out).numpy().astype(np.float32)

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        """The most probable topic of each text, its probability, and every topic's."""
        found = []
        for row in self.probabilities(texts):
            best = int(row.argmax())
            found.append(Prediction(self.classes[best], float(row[best]),
                                    {name: float(p) for name, p in zip(self.classes, row,
                                                                       strict=True)}))
        return found

    def to_bytes(self) -> bytes:
        """The whole classifier as one torch file (tokenizer JSON, config, weights, classes)."""
        buffer = io.BytesIO()
        torch.save({"format": FILE_FORMAT, "tokenizer": self.tokenizer.to_json(),
                    "max_length": self.tokenizer.max_length, "classes": self.classes,
                    "config": self.model.config.to_dict(),
                    "state": {k: v.detach().cpu().contiguous()
                              for k, v in self.model.state_dict().items()}}, buffer)
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> TextClassifier:
        try:
            saved = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
            if saved.get("format") != FILE_FORMAT:
                raise CheckpointCorrupt(f"text model format {saved.get('format')!r}; this "
                                        f"version reads format {FILE_FORMAT}")
            options = dict(saved["config"])
            config = TextCNNConfig(**{**options, "widths": tuple(options["widths"])})
            model = TextCNN(config)
            model.load_state_dict(saved["state"], strict=True)
            tokenizer = TextTokenizer.from_json(saved["tokenizer"],
                                                max_length=int(saved["max_length"]),
                                                min_length=max(config.widths))
        except (RuntimeError, KeyError, TypeError, ValueError, EOFError) as exc:
            raise CheckpointCorrupt(f"not a readable text model file: {exc}") from exc
        return cls(tokenizer, model, saved["classes"])
