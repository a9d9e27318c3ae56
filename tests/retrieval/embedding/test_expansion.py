"""alpha-QE and DBA: exact weights on hand-made vectors, effects on a two-cluster gallery."""

from __future__ import annotations

import numpy as np
import pytest

from lookalike.retrieval.embedding.expansion import (
    alpha_query_expansion,
    database_side_augmentation,
)
from lookalike.retrieval.errors import ArrayShapeError, InvalidSearchParameter
from lookalike.retrieval.evaluation.metrics import (
    exact_search,
    labels_relevance,
    score_rankings,
)

DIM = 16


def unit_rows(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=-1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def two_clusters() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """40 noisy unit vectors around each of two orthogonal centres, and their labels."""
    rng = np.random.default_rng(11)
    centres = np.eye(DIM)[:2]
    labels = np.repeat([0, 1], 40)
    gallery = unit_rows(centres[labels] + 0.25 * rng.standard_normal((80, DIM)))
    return gallery, labels, centres


def test_alpha_qe_weights_neighbours_by_score_to_the_alpha() -> None:
    query = np.array([[1.0, 0.0, 0.0]])
    neighbours = np.array([[[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0]]])
    scores = np.array([[0.5, -0.2, -np.inf]])  # negative and padding entries weigh nothing
    expanded = alpha_query_expansion(query, neighbours, scores, alpha=2.0)
    np.testing.assert_allclose(expanded, unit_rows(np.array([[1.0, 0.25, 0.0]])), rtol=1e-6)
    assert expanded.dtype == np.float32 and expanded.flags.c_contiguous
    average = alpha_query_expansion(query, neighbours[:, :1], np.array([[0.5]]), alpha=0.0)
    np.testing.assert_allclose(average, unit_rows(np.array([[1.0, 1.0, 0.0]])), rtol=1e-6)


def test_alpha_qe_pulls_borderline_queries_into_their_cluster(two_clusters) -> None:
    gallery, labels, centres = two_clusters
    rng = np.random.default_rng(2)
    borderline = 0.6 * centres[0] + 0.4 * centres[1] + 0.25 * rng.standard_normal((20, DIM))
    queries = unit_rows(borderline)
    relevant = [set(np.flatnonzero(labels == 0).tolist())] * 20
    scores, ranking = exact_search(queries, gallery, 10)
    expanded = alpha_query_expansion(queries, gallery[ranking], scores, alpha=3.0)
    before = score_rankings(exact_search(queries, gallery, 80)[1], relevant).map
    after = score_rankings(exact_search(expanded, gallery, 80)[1], relevant).map
    assert after > before + 0.05
    assert (expanded @ centres[0]).mean() > (queries @ centres[0]).mean()


def test_dba_of_one_neighbour_is_the_weighted_sum() -> None:
    gallery = unit_rows(np.array([[1.0, 0.0], [0.0, 1.0]]))
    # Row 0 lists itself (ignored) and row 1 at score 0.5; row 1 lists padding only.
    out = database_side_augmentation(
        gallery, np.array([[0, 1], [-1, -1]]), np.array([[1.0, 0.5], [-np.inf, -np.inf]]), alpha=1
    )
    np.testing.assert_allclose(out, unit_rows(np.array([[1.0, 0.5], [0.0, 1.0]])), rtol=1e-6)


def test_dba_tightens_clusters_and_raises_map(two_clusters) -> None:
    gallery, labels, _ = two_clusters
    scores, neighbours = exact_search(gallery, gallery, 5, exclude_self=True)
    augmented = database_side_augmentation(gallery, neighbours, scores, alpha=3.0)
    np.testing.assert_allclose(np.linalg.norm(augmented, axis=1), 1.0, rtol=1e-5)

    def within_cluster_similarity(space: np.ndarray) -> float:
        same = (labels[:, None] == labels[None, :]) & ~np.eye(len(labels), dtype=bool)
        return float((space @ space.T)[same].mean())

    def leave_one_out_map(space: np.ndarray) -> float:
        _, ranking = exact_search(space, space, 79, exclude_self=True)
        return score_rankings(ranking, labels_relevance(labels, labels, exclude_self=True)).map

    assert within_cluster_similarity(augmented) > within_cluster_similarity(gallery) + 0.05
    assert leave_one_out_map(augmented) > leave_one_out_map(gallery)


def test_shapes_and_alpha_are_checked(two_clusters) -> None:
    gallery = two_clusters[0]
    with pytest.raises(ArrayShapeError, match=r"neighbours \(Q, n, D\)"):
        alpha_query_expansion(gallery[:2], gallery[None, :3], np.ones((2, 3)))
    with pytest.raises(InvalidSearchParameter, match="alpha must be >= 0, got -1"):
        alpha_query_expansion(gallery[:1], gallery[None, :3], np.ones((1, 3)), alpha=-1)
    with pytest.raises(ArrayShapeError, match=r"neighbour index 80 is outside .* 0..79"):
        database_side_augmentation(gallery, np.full((80, 2), 80), np.ones((80, 2)))
