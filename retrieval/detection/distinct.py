"""Each distinct box once: a two-stage detector answers one box under several labels."""

from __future__ import annotations

import numpy as np


def best_per_box(boxes: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Indices of each distinct box's best-scoring answer, best first (ties: first given)."""
    if len(boxes) == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    _, first = np.unique(np.asarray(boxes)[order], axis=0, return_index=True)
    return order[np.sort(first)]
