"""Copy-detection scoring: micro-average precision over pooled pairs, as the Image Similarity
Challenge 2021 reports it, and a decision threshold fitted for a target precision."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lookalike.retrieval.errors import EvaluationError

__all__ = ["Threshold", "fit_threshold", "micro_average_precision", "precision_recall_at"]


def _check(values: np.ndarray, positives: np.ndarray, total: int) -> None:
    """Raise unless values and positives are matching 1-D arrays and total covers positives."""
    if values.ndim != 1 or values.shape != positives.shape:
        raise EvaluationError(f"pair scores {values.shape} and labels {positives.shape} must be "
                              "1-D arrays of the same length")
    if total < int(positives.sum()):
        raise EvaluationError(f"total positives {total} is below the {int(positives.sum())} "
                              "positive pairs given")


def micro_average_precision(values: np.ndarray, positives: np.ndarray, total: int) -> float:
    """Average precision of all pairs ranked together by `values` (higher: more of a copy);
    `total` is how many true copies exist (queries with an original), found or not."""
    _check(values, positives, total)
    if total == 0:
        return 0.0
    order = np.argsort(-values, kind="stable")
    hits = positives[order].astype(np.float64)
    precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return float((precision * hits).sum() / total)


def precision_recall_at(values: np.ndarray, positives: np.ndarray, total: int,
                        threshold: float) -> tuple[float, float]:
    """(precision, recall) of calling every pair with value >= threshold a copy."""
    _check(values, positives, total)
    called = values >= threshold
    found = int((called & positives).sum())
    precision = found / int(called.sum()) if called.any() else 1.0
    return precision, found / total if total else 0.0


@dataclass(frozen=True)
class Threshold:
    """A fitted threshold with the precision and recall it keeps on the pairs it was fitted on."""

    value: float
    precision: float
    recall: float


def fit_threshold(values: np.ndarray, positives: np.ndarray, total: int, *,
                  target_precision: float) -> Threshold:
    """The lowest threshold whose precision (and that of every higher one) reaches the
    target: the most recall for that precision. With no such threshold, one above every
    value (nothing is called a copy)."""
    _check(values, positives, total)
    if not 0.0 < target_precision <= 1.0:
        raise EvaluationError(f"target precision {target_precision} must lie in (0, 1]")
    order = np.argsort(-values, kind="stable")
    sorted_values, hits = values[order], positives[order].astype(np.int64)
    found = np.cumsum(hits)
    precision = found / np.arange(1, len(hits) + 1)
    distinct = np.r_[sorted_values[:-1] != sorted_values[1:], True] if len(hits) else hits
    good = np.minimum.accumulate(precision) >= target_precision
    candidates = np.flatnonzero(good & distinct.astype(bool))
    if len(candidates) == 0:
        above = float(sorted_values[0]) + 1.0 if len(hits) else 1.0
        return Threshold(above, 1.0, 0.0)
    cut = int(candidates[-1])
    return Threshold(float(sorted_values[cut]), float(precision[cut]),
                     float(found[cut] / total) if total else 0.0)
