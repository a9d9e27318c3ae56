"""Query-time and index-time neighbour averaging: alpha query expansion and DBA.

Both replace a vector by the normalised sum of itself and its nearest neighbours, each neighbour
weighted by its similarity to the power alpha (Radenović, Tolias, Chum: alpha-QE). Negative,
-inf (FAISS padding) and self entries get weight 0. alpha = 0 gives plain average QE.
"""

from __future__ import annotations

import numpy as np

from lookalike.retrieval.errors import ArrayShapeError, InvalidSearchParameter

__all__ = ["alpha_query_expansion", "database_side_augmentation"]


def _weights(scores: np.ndarray, alpha: float) -> np.ndarray:
    """score ** alpha for positive finite scores, 0 elsewhere."""
    if alpha < 0:
        raise InvalidSearchParameter(f"alpha must be >= 0, got {alpha}")
    usable = np.isfinite(scores) & (scores > 0)
    return np.where(usable, np.where(usable, scores, 1.0) ** alpha, 0.0)


def _normalised(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm, as C-contiguous float32."""
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return np.ascontiguousarray(vectors / np.maximum(norms, 1e-12), dtype=np.float32)


def alpha_query_expansion(
    query_vecs: np.ndarray,
    neighbour_vecs: np.ndarray,
    neighbour_scores: np.ndarray,
    *,
    alpha: float = 3.0,
) -> np.ndarray:
    """(Q, D) expanded queries: query + sum of its (Q, n, D) neighbours weighted score**alpha."""
    queries = np.asarray(query_vecs, dtype=np.float64)
    neighbours = np.asarray(neighbour_vecs, dtype=np.float64)
    scores = np.asarray(neighbour_scores, dtype=np.float64)
    if (
        queries.ndim != 2
        or neighbours.shape[:1] + neighbours.shape[2:] != queries.shape
        or scores.shape != neighbours.shape[:2]
    ):
        raise ArrayShapeError(
            f"expected queries (Q, D), neighbours (Q, n, D) and scores (Q, n), got "
            f"{queries.shape}, {neighbours.shape} and {scores.shape}"
        )
    weights = _weights(scores, alpha)
    return _normalised(queries + np.einsum("qn,qnd->qd", weights, neighbours))


def database_side_augmentation(
    gallery: np.ndarray,
    neighbours_idx: np.ndarray,
    neighbour_scores: np.ndarray,
    *,
    alpha: float = 3.0,
) -> np.ndarray:
    """(N, D) gallery where each row is the weighted, renormalised sum of itself and neighbours.

    `neighbours_idx` (N, n) are gallery rows (e.g. from `exact_search` of the gallery against
    itself); an entry equal to the row itself or negative is ignored.
    """
    vectors = np.asarray(gallery, dtype=np.float64)
    idx = np.asarray(neighbours_idx, dtype=np.int64)
    scores = np.asarray(neighbour_scores, dtype=np.float64)
    if vectors.ndim != 2 or idx.ndim != 2 or idx.shape != scores.shape or len(idx) != len(vectors):
        raise ArrayShapeError(
            f"expected gallery (N, D), neighbours_idx and scores (N, n), got "
            f"{vectors.shape}, {idx.shape} and {scores.shape}"
        )
    if idx.size and idx.max() >= len(vectors):
        raise ArrayShapeError(
            f"neighbour index {idx.max()} is outside the gallery; allowed: 0..{len(vectors) - 1}"
        )
    valid = (idx >= 0) & (idx != np.arange(len(idx))[:, None])
    weights = np.where(valid, _weights(scores, alpha), 0.0)
    neighbours = vectors[np.where(valid, idx, 0)]
    return _normalised(vectors + np.einsum("nk,nkd->nd", weights, neighbours))
