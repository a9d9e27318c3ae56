"""Trained text models on disk: content-addressed files under LOOKALIKE_HOME/weights, read
back only when their bytes still hash to the sha256 the catalog recorded."""

from __future__ import annotations

import hashlib
from pathlib import Path

from lookalike.retrieval.errors import WeightsMismatch
from lookalike.retrieval.text.classifier import TextClassifier
from lookalike.services.catalog.models import TextModel
from lookalike.services.config import Settings
from lookalike.services.storage.files import write_atomic


def store_classifier(classifier: TextClassifier, *, settings: Settings) -> tuple[Path, str]:
    """Write the classifier as weights/text-<sha256>.pt; returns (path, sha256)."""
    data = classifier.to_bytes()
    sha = hashlib.sha256(data).hexdigest()
    return write_atomic(settings.layout.weights / f"text-{sha}.pt", data), sha


def load_classifier(model: TextModel, *, settings: Settings) -> TextClassifier:
    """The classifier of a catalogued text model; WeightsMismatch when its file changed."""
    path = settings.layout.resolve(model.path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise WeightsMismatch(f"text model '{model.name}': cannot read {path}: {exc}") from exc
    found = hashlib.sha256(data).hexdigest()
    if found != model.sha256:
        raise WeightsMismatch(f"text model '{model.name}': {path} hashes to {found}, not the "
                              f"recorded {model.sha256}; train it again")
    return TextClassifier.from_bytes(data)
