"""Classification figures: accuracy and macro-F1 (every class counts the same)."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score, f1_score


def accuracy(truth: np.ndarray, predicted: np.ndarray) -> float:
    return float(accuracy_score(truth, predicted))


def macro_f1(truth: np.ndarray, predicted: np.ndarray) -> float:
    return float(f1_score(truth, predicted, average="macro"))
