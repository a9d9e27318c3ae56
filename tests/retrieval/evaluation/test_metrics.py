"""Retrieval metrics against hand-computed values, junk handling, exact search and ANN recall."""

from __future__ import annotations

import numpy as np
import pytest

from lookalike.retrieval.errors import ArrayShapeError, EvaluationError
from lookalike.retrieval.evaluation.metrics import (
    ann_recall_at_k,
    average_precision,
    exact_search,
    labels_relevance,
    mean_pr_curve,
    precision_at_k,
    precision_recall_curve,
    recall_at_k,
    score_rankings,
)


def unit_rows(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def test_average_precision_matches_the_hand_computed_value() -> None:
    # Relevant at ranks 1 and 3; the third relevant item is never retrieved.
    assert average_precision(np.array([1, 0, 1, 0], bool), 3) == pytest.approx((1 + 2 / 3) / 3)
    assert average_precision(np.array([1, 1, 0]), 2) == pytest.approx(1.0)
    assert average_precision(np.array([0, 0, 0, 1]), 1) == pytest.approx(0.25)
    assert average_precision(np.zeros(5, bool), 2) == 0.0


def test_average_precision_rejects_impossible_counts() -> None:
    with pytest.raises(EvaluationError, match="n_relevant must be positive, got 0"):
        average_precision(np.array([0, 1]), 0)
    with pytest.raises(EvaluationError, match="holds 2 relevant items but n_relevant is 1"):
        average_precision(np.array([1, 1]), 1)


def test_precision_and_recall_at_k() -> None:
    ranked = np.array([1, 0, 1, 0, 0], bool)
    assert precision_at_k(ranked, 1) == 1.0
    assert precision_at_k(ranked, 4) == 0.5
    assert precision_at_k(ranked, 10) == pytest.approx(0.2)  # ranks past the list are misses
    assert recall_at_k(ranked, 4, 2) == 0.25
    assert recall_at_k(ranked, 4, 5) == 0.5
    with pytest.raises(EvaluationError, match="k must be positive"):
        precision_at_k(ranked, 0)


def test_precision_recall_curve_follows_each_rank() -> None:
    precision, recall = precision_recall_curve(np.array([1, 0, 1, 1]), 4)
    np.testing.assert_allclose(precision, [1, 1 / 2, 2 / 3, 3 / 4])
    np.testing.assert_allclose(recall, [0.25, 0.25, 0.5, 0.75])


def test_score_rankings_averages_over_queries() -> None:
    rankings = np.array([[0, 1, 2, 3], [3, 2, 1, 0]])
    relevant = [{0, 2, 5}, {1}]
    scores = score_rankings(rankings, relevant, ks=(1, 2))
    ap_first = (1 + 2 / 3) / 3
    ap_second = 1 / 3
    assert scores.map == pytest.approx((ap_first + ap_second) / 2)
    assert scores.precision == pytest.approx({1: 0.5, 2: 0.25})
    assert scores.recall == pytest.approx({1: (1 / 3 + 0) / 2, 2: (1 / 3 + 0) / 2})
    assert scores.queries == 2


def test_boolean_matrix_gives_the_same_scores_as_sets() -> None:
    rng = np.random.default_rng(3)
    matrix = rng.random((20, 50)) < 0.2
    matrix[:, 0] = True  # every query has a relevant item
    rankings = np.argsort(rng.random((20, 50)), axis=1)[:, :30]
    sets = [set(np.flatnonzero(row).tolist()) for row in matrix]
    from_matrix = score_rankings(rankings, matrix)
    from_sets = score_rankings(rankings, sets)
    assert from_matrix.map == pytest.approx(from_sets.map)
    assert from_matrix.precision == pytest.approx(from_sets.precision)
    assert from_matrix.recall == pytest.approx(from_sets.recall)


def test_junk_is_removed_before_scoring() -> None:
    # Ranking: junk, relevant, junk, irrelevant, relevant. Without the junk items the
    # relevant ones sit at ranks 1 and 3.
    rankings = np.array([[7, 1, 8, 4, 2]])
    scores = score_rankings(rankings, [{1, 2}], ks=(1, 3), junk=[{7, 8}])
    assert scores.map == pytest.approx((1 + 2 / 3) / 2)
    assert scores.precision[1] == 1.0
    assert scores.recall[3] == 1.0
    without_junk = score_rankings(rankings, [{1, 2}], ks=(1,))
    assert without_junk.map < scores.map


def test_junk_never_counts_as_relevant_and_padding_is_ignored() -> None:
    # Item 3 is both listed relevant and junk: it is ignored; -1 is FAISS padding.
    scores = score_rankings(np.array([[3, -1, 5, -1]]), [{3, 5}], ks=(1,), junk=[{3}])
    assert scores.map == 1.0


def test_queries_without_relevant_items_are_not_scored() -> None:
    scores = score_rankings(np.array([[0, 1], [1, 0]]), [{1}, set()], ks=(1,))
    assert scores.queries == 1
    assert scores.map == 0.5
    with pytest.raises(EvaluationError, match="none of the 2 queries has a relevant"):
        score_rankings(np.array([[0, 1], [1, 0]]), [set(), set()])


def test_score_rankings_checks_shapes() -> None:
    with pytest.raises(ArrayShapeError, match="relevance has 1 entries for 2 queries"):
        score_rankings(np.array([[0], [1]]), [{0}])
    with pytest.raises(ArrayShapeError, match=r"rankings must be \(Q, K\)"):
        score_rankings(np.array([0, 1]), [{0}, {1}])


def test_mean_pr_curve_interpolates_at_fixed_recall_levels() -> None:
    # Query 1 is perfect; query 2 finds its only relevant item at rank 2.
    levels, precision = mean_pr_curve(np.array([[0, 1], [0, 1]]), [{0, 1}, {1}], points=11)
    np.testing.assert_allclose(levels, np.linspace(0, 1, 11))
    np.testing.assert_allclose(precision, np.full(11, (1 + 0.5) / 2))
    levels, precision = mean_pr_curve(np.array([[0, 9, 1]]), [{0, 1, 2}], points=101)
    assert levels.shape == precision.shape == (101,)
    assert precision[0] == 1.0
    assert precision[50] == pytest.approx(2 / 3)  # recall 0.5 first reached at rank 3
    assert precision[100] == 0.0  # recall 1 is never reached


def test_labels_relevance_scores_leave_one_out_search() -> None:
    labels = np.array([0, 0, 0, 1, 1, 2])
    relevance = labels_relevance(labels, labels, exclude_self=True)
    assert relevance[0] == {1, 2}
    assert relevance[5] == set()
    # Perfect rankings (self excluded) for the classes with more than one member.
    rankings = np.array([[1, 2, 3], [0, 2, 4], [0, 1, 5], [4, 0, 1], [3, 5, 0], [0, 1, 2]])
    scores = score_rankings(rankings, relevance, ks=(1, 2))
    assert scores.queries == 5
    assert scores.map == 1.0
    assert scores.recall[2] == 1.0
    as_sets = score_rankings(rankings, [relevance[q] for q in range(6)], ks=(1, 2))
    assert as_sets.map == pytest.approx(scores.map)
    assert as_sets.precision == pytest.approx(scores.precision)


def test_exact_search_matches_a_full_sort_across_blocks() -> None:
    rng = np.random.default_rng(0)
    gallery, queries = (
        unit_rows(rng.standard_normal((300, 16))),
        unit_rows(rng.standard_normal((50, 16))),
    )
    scores, indices = exact_search(queries, gallery, 10, block_bytes=4 * 300 * 7)
    full = queries @ gallery.T
    np.testing.assert_array_equal(indices, np.argsort(-full, axis=1)[:, :10])
    np.testing.assert_allclose(scores, np.sort(full, axis=1)[:, ::-1][:, :10], rtol=1e-6)
    assert scores.dtype == np.float32 and indices.dtype == np.int64


def test_exact_search_excludes_self_and_pads_short_galleries() -> None:
    vectors = unit_rows(np.random.default_rng(1).standard_normal((5, 8)))
    scores, indices = exact_search(vectors, vectors, 6, exclude_self=True, block_bytes=1)
    assert all(q not in row for q, row in enumerate(indices))
    assert (indices[:, 4:] == -1).all() and np.isneginf(scores[:, 4:]).all()
    assert sorted(indices[0, :4]) == [1, 2, 3, 4]
    with pytest.raises(ArrayShapeError, match="queries have dimension 8 but the gallery 4"):
        exact_search(vectors, vectors[:, :4], 2)


def test_ann_recall_at_k_counts_found_exact_neighbours() -> None:
    exact = np.array([[1, 2, 3, 4], [5, 6, 7, 8]])
    approx = np.array([[4, 3, 9, 9], [5, 6, 7, 8]])
    assert ann_recall_at_k(approx, exact) == pytest.approx((0.5 + 1.0) / 2)
    assert ann_recall_at_k(exact, exact) == 1.0
    with pytest.raises(ArrayShapeError):
        ann_recall_at_k(approx[:1], exact)
