"""Baselines the text-CNN is measured against: TF-IDF + logistic regression, and a frozen
sentence encoder (a sentence-transformers model folder) + logistic regression."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression


class Baseline(Protocol):
    name: str

    def fit(self, texts: Sequence[str], labels: np.ndarray) -> None: ...

    def predict(self, texts: Sequence[str]) -> np.ndarray: ...

    def parameters(self) -> int: ...


def _logistic(seed: int) -> LogisticRegression:
    return LogisticRegression(C=10.0, max_iter=2000, random_state=seed)


class MajorityClass:
    """Always the most frequent training class: the floor every model must clear."""

    name = "majority class"

    def fit(self, texts: Sequence[str], labels: np.ndarray) -> None:
        self.label = int(np.bincount(labels).argmax())

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        return np.full(len(texts), self.label, dtype=np.int64)

    def parameters(self) -> int:
        return 0


class TfidfLogistic:
    """Word uni- and bigram TF-IDF (sublinear tf) and a multinomial logistic regression."""

    name = "TF-IDF + LR"

    def __init__(self, *, seed: int = 0) -> None:
        self.vectorizer = TfidfVectorizer(sublinear_tf=True, min_df=2, ngram_range=(1, 2))
        self.model = _logistic(seed)

    def fit(self, texts: Sequence[str], labels: np.ndarray) -> None:
        self.model.fit(self.vectorizer.fit_transform(texts), labels)

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        return np.asarray(self.model.predict(self.vectorizer.transform(texts)))

    def parameters(self) -> int:
        return int(self.model.coef_.size + self.model.intercept_.size)


class EncoderLogistic:
    """A frozen sentence encoder's normalised mean-pooled vectors and a logistic regression.
    `model_dir` is a sentence-transformers model folder (read offline)."""

    def __init__(self, model_dir: Path, *, name: str, seed: int = 0, threads: int = 1) -> None:
        from sentence_transformers import SentenceTransformer  # noqa: PLC0415 - optional, slow

        self.name = name
        self.encoder: Any = SentenceTransformer(str(model_dir), device="cpu",
                                                local_files_only=True)
        self.model = _logistic(seed)

    def _vectors(self, texts: Sequence[str]) -> np.ndarray:
        return np.asarray(self.encoder.encode(list(texts), batch_size=64,
                                              normalize_embeddings=True,
                                              show_progress_bar=False))

    def fit(self, texts: Sequence[str], labels: np.ndarray) -> None:
        self.model.fit(self._vectors(texts), labels)

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        return np.asarray(self.model.predict(self._vectors(texts)))

    def parameters(self) -> int:
        encoder = sum(int(p.numel()) for p in self.encoder.parameters())
        return encoder + int(self.model.coef_.size + self.model.intercept_.size)
