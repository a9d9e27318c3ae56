"""Duplicate clusters: every pair of vectors at least `threshold` alike (a FAISS range search),
joined into connected components, as large-scale de-duplication tools do."""

from __future__ import annotations

from dataclasses import dataclass

import faiss
import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from lookalike.retrieval.errors import ArrayShapeError

__all__ = ["Cluster", "duplicate_clusters", "similar_pairs"]

_BLOCK = 4096


@dataclass(frozen=True)
class Cluster:
    """Ids (ascending) of one group of duplicates, and the best and worst linking score."""

    ids: list[int]
    best: float
    worst: float


def _check(ids: np.ndarray, vectors: np.ndarray) -> None:
    """Raise unless ids (N,) int64 match vectors (N, D) float32."""
    if vectors.ndim != 2 or ids.shape != (vectors.shape[0],):
        raise ArrayShapeError(f"ids {ids.shape} and vectors {vectors.shape} must be (N,) and "
                              "(N, D) with the same N")


def similar_pairs(vectors: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """(pairs (M, 2) of row numbers i < j, their inner products) with product >= threshold."""
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    rows, cols, scores = [], [], []
    for start in range(0, len(vectors), _BLOCK):
        block = np.ascontiguousarray(vectors[start:start + _BLOCK], dtype=np.float32)
        limits, found_scores, found = index.range_search(block, threshold)
        counts: np.ndarray = np.diff(np.asarray(limits, dtype=np.int64))
        query_rows = np.repeat(np.arange(start, start + len(block)), counts)
        keep = query_rows < found
        rows.append(query_rows[keep])
        cols.append(found[keep])
        scores.append(found_scores[keep])
    pairs = np.stack([np.concatenate(rows), np.concatenate(cols)], axis=1).astype(np.int64)
    return pairs.reshape(-1, 2), np.concatenate(scores).astype(np.float32)


def duplicate_clusters(ids: np.ndarray, vectors: np.ndarray, threshold: float
                       ) -> list[Cluster]:
    """Groups of two or more ids linked by pairs at least `threshold` alike, biggest first."""
    _check(ids, vectors)
    if len(ids) == 0:
        return []
    pairs, scores = similar_pairs(vectors, threshold)
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])),
                       shape=(len(ids), len(ids)))
    _, labels = connected_components(graph, directed=False)
    clusters = []
    pair_labels = labels[pairs[:, 0]] if len(pairs) else np.zeros(0, np.int64)
    for label in np.unique(pair_labels):
        members = np.sort(ids[labels == label]).tolist()
        linking = scores[pair_labels == label]
        clusters.append(Cluster(members, float(linking.max()), float(linking.min())))
    return sorted(clusters, key=lambda c: (-len(c.ids), c.ids[0]))
