"""A box answered under several labels counts once, at its best score."""

from __future__ import annotations

import numpy as np

from lookalike.retrieval.detection.distinct import best_per_box


def test_each_distinct_box_once_at_its_best_score_best_first() -> None:
    boxes = np.array([[0, 0, 10, 10], [5, 5, 20, 20], [0, 0, 10, 10], [5, 5, 20, 20],
                      [1, 1, 2, 2]], dtype=np.float32)
    scores = np.array([0.2, 0.5, 0.7, 0.1, 0.5])
    kept = best_per_box(boxes, scores)
    assert kept.tolist() == [2, 1, 4]
    assert best_per_box(np.zeros((0, 4)), np.zeros(0)).tolist() == []
