"""Duplicate clusters against a brute-force reading of the same vectors."""

from __future__ import annotations

import numpy as np
import pytest

from lookalike.retrieval.errors import ArrayShapeError
from lookalike.retrieval.index.clusters import duplicate_clusters, similar_pairs


def unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture()
def vectors() -> np.ndarray:
    """200 random directions, then near-copies: rows 200-202 of row 5, 203 of row 7, and a
    chain 9 -> 204 -> 205 (each about 0.8 alike to the one before, 205 further from 9);
    unrelated directions stay below 0.5."""
    gen = np.random.default_rng(3)
    base = unit(gen.normal(size=(200, 128)))
    near = lambda row, eps: base[row] + eps * gen.normal(size=128)  # noqa: E731
    extra = [near(5, 0.01), near(5, 0.01), near(5, 0.01), near(7, 0.01), near(9, 0.066)]
    extra.append(unit(extra[-1][None])[0] + 0.066 * gen.normal(size=128))
    return np.concatenate([base, unit(np.array(extra))])


def test_pairs_match_brute_force(vectors: np.ndarray) -> None:
    pairs, scores = similar_pairs(vectors, 0.8)
    gram = vectors @ vectors.T
    expected = {(i, j) for i, j in zip(*np.nonzero(gram >= 0.8), strict=True) if i < j}
    assert {tuple(p) for p in pairs.tolist()} == expected
    np.testing.assert_allclose(scores, gram[pairs[:, 0], pairs[:, 1]], atol=1e-5)


def test_clusters_join_chains_and_keep_catalog_ids(vectors: np.ndarray) -> None:
    ids = np.arange(1000, 1000 + len(vectors), dtype=np.int64)
    gram = vectors @ vectors.T
    threshold = float(min(gram[9, 204], gram[204, 205])) - 1e-4
    assert gram[9, 205] < threshold  # 205 joins 9 only through 204
    clusters = duplicate_clusters(ids, vectors, threshold)
    groups = [c.ids for c in clusters]
    assert threshold > 0.6
    assert groups == [[1005, 1200, 1201, 1202], [1009, 1204, 1205], [1007, 1203]]
    assert all(c.best >= c.worst >= threshold for c in clusters)


def test_nothing_alike_gives_no_cluster_and_shapes_are_checked(vectors: np.ndarray) -> None:
    ids = np.arange(len(vectors), dtype=np.int64)
    assert duplicate_clusters(ids, vectors, 1.01) == []
    assert duplicate_clusters(ids[:0], vectors[:0], 0.5) == []
    with pytest.raises(ArrayShapeError):
        duplicate_clusters(ids[:3], vectors, 0.5)
