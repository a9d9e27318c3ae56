"""Labelled texts from disk: one folder per class of .txt files, or a CSV with a text and a
label column; and the stratified held-out split every model is scored on."""

from __future__ import annotations

import csv
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lookalike.retrieval.errors import InvalidTrainingConfig

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LabelledTexts:
    """Texts with int labels indexing `classes` (sorted names)."""

    texts: list[str]
    labels: np.ndarray
    classes: list[str]

    def subset(self, indices: Sequence[int]) -> LabelledTexts:
        return LabelledTexts([self.texts[i] for i in indices], self.labels[list(indices)],
                             self.classes)


def from_pairs(pairs: Sequence[tuple[str, str]]) -> LabelledTexts:
    """(text, class name) pairs -> LabelledTexts with classes numbered in sorted order."""
    classes = sorted({label for _, label in pairs})
    if len(classes) < 2:
        raise InvalidTrainingConfig(f"need texts of at least 2 classes; found {classes}")
    number = {name: i for i, name in enumerate(classes)}
    return LabelledTexts([text for text, _ in pairs],
                         np.array([number[label] for _, label in pairs], dtype=np.int64), classes)


def read_folders(root: Path) -> LabelledTexts:
    """Every ROOT/CLASS/*.txt, classes and files in sorted order. Bytes that are not UTF-8
    are replaced (U+FFFD) and the files they occur in are logged."""
    pairs = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for path in sorted(folder.glob("*.txt")):
            data = path.read_bytes()
            text = data.decode("utf-8", errors="replace")
            if "\ufffd" in text and "\ufffd".encode() not in data:
                logger.warning("%s is not valid UTF-8; bad bytes replaced", path)
            pairs.append((text, folder.name))
    if not pairs:
        raise InvalidTrainingConfig(f"{root} holds no CLASS/*.txt files")
    return from_pairs(pairs)


def read_csv(path: Path, *, text_column: str = "text", label_column: str = "label"
             ) -> LabelledTexts:
    """A CSV file with a header naming its text and label columns."""
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = {text_column, label_column} - set(reader.fieldnames or [])
        if missing:
            raise InvalidTrainingConfig(f"{path} lacks the column(s) {sorted(missing)}; its "
                                        f"header is {reader.fieldnames}")
        pairs = [(row[text_column], row[label_column]) for row in reader
                 if row[text_column] and row[label_column]]
    return from_pairs(pairs)


def read_corpus(path: Path) -> LabelledTexts:
    """A folder per class, or a .csv file (columns text, label)."""
    if path.is_dir():
        return read_folders(path)
    if path.suffix.lower() == ".csv" and path.is_file():
        return read_csv(path)
    raise InvalidTrainingConfig(f"{path} is neither a folder of CLASS/*.txt nor a .csv file")


def stratified_split(labels: np.ndarray, *, test_fraction: float, seed: int
                     ) -> tuple[list[int], list[int]]:
    """(train, held-out) positions, each class split in the same proportion. scikit-learn is
    imported here, not with the module: it takes about a second (with SciPy), and every
    server and worker process imports the text training job that calls this."""
    from sklearn.model_selection import train_test_split  # noqa: PLC0415 - see the docstring

    positions = np.arange(len(labels))
    train, test = train_test_split(positions, test_size=test_fraction, random_state=seed,
                                   stratify=labels)
    return sorted(int(i) for i in train), sorted(int(i) for i in test)
