"""Classification figures: accuracy and macro-F1 (every class counts the same). scikit-learn
is imported when a figure is asked for, not with the module: it takes about a second, and
every server and worker process imports the text training job that reports these."""

from __future__ import annotations

import numpy as np


def accuracy(truth: np.ndarray, predicted: np.ndarray) -> float:
    from sklearn.metrics import accuracy_score  # noqa: PLC0415 - see the module's docstring

    return float(accuracy_score(truth, predicted))


def macro_f1(truth: np.ndarray, predicted: np.ndarray) -> float:
    from sklearn.metrics import f1_score  # noqa: PLC0415 - see the module's docstring

    return float(f1_score(truth, predicted, average="macro"))
