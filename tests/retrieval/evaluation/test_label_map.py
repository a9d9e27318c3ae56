"""label_map: mAP by class label over full rankings, against the general scorer."""

from __future__ import annotations

import numpy as np
import pytest

from lookalike.retrieval.errors import ArrayShapeError, EvaluationError
from lookalike.retrieval.evaluation.metrics import (
    exact_search,
    label_map,
    labels_relevance,
    score_rankings,
)


def _unit(rows: list[list[float]]) -> np.ndarray:
    vectors = np.array(rows, dtype=np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_leave_one_out_by_hand() -> None:
    vectors = _unit([[1, 0], [0.9, 0.1], [0, 1], [0.6, 0.4]])
    labels = np.array([0, 0, 1, 1])
    # Queries 0, 1 and 2 rank their one positive first: AP 1 each. Query 3 ranks 1 (0.89),
    # 0 (0.83), then its positive 2 (0.55): AP 1/3. Mean (1 + 1 + 1 + 1/3) / 4.
    assert label_map(vectors, labels) == pytest.approx((3 + 1 / 3) / 4)


def test_agrees_with_score_rankings_on_random_vectors() -> None:
    rng = np.random.default_rng(0)
    vectors = _unit(rng.normal(size=(300, 8)).tolist())
    labels = rng.integers(0, 5, size=300)
    _, ranked = exact_search(vectors, vectors, 299, exclude_self=True)
    expected = score_rankings(ranked, labels_relevance(labels, labels, exclude_self=True)).map
    assert label_map(vectors, labels, block=64) == pytest.approx(expected, abs=1e-6)
    queries, query_labels = vectors[:50], labels[:50]
    gallery, gallery_labels = vectors[50:], labels[50:]
    _, ranked = exact_search(queries, gallery, len(gallery))
    expected = score_rankings(ranked, labels_relevance(query_labels, gallery_labels)).map
    got = label_map(queries, query_labels, gallery=gallery, gallery_labels=gallery_labels)
    assert got == pytest.approx(expected, abs=1e-6)


def test_bad_inputs_are_refused() -> None:
    vectors = _unit([[1, 0], [0, 1]])
    with pytest.raises(ArrayShapeError, match="one label per vector"):
        label_map(vectors, np.array([0, 1, 2]))
    with pytest.raises(ArrayShapeError, match="gallery_labels are needed"):
        label_map(vectors, np.array([0, 1]), gallery=vectors)
    with pytest.raises(EvaluationError, match="none of the 2 queries"):
        label_map(vectors, np.array([0, 1]))
