"""Retrieval quality: AP/mAP, precision and recall at k, PR curves, exact search, ANN recall.

Rankings are (Q, K) int64 arrays of gallery row indices, best first; negative entries (the -1
padding FAISS returns when it finds fewer than K) are ignored. Relevance is given per query as a
set of gallery indices, a (Q, G) boolean matrix, or a `LabelRelevance` (same class = relevant).
Junk items (the Revisited Oxford/Paris protocol) are dropped from a ranking before scoring and
never count as relevant. Queries with no relevant item in the gallery are not scored.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from lookalike.retrieval.errors import ArrayShapeError, EvaluationError

__all__ = [
    "LabelRelevance",
    "RetrievalScores",
    "ann_recall_at_k",
    "average_precision",
    "exact_search",
    "label_map",
    "labels_relevance",
    "mean_pr_curve",
    "precision_at_k",
    "precision_recall_curve",
    "recall_at_k",
    "score_rankings",
]

log = logging.getLogger(__name__)

_BLOCK_BYTES = 256 * 2**20
_LABEL_MAP_BLOCK = 256


@dataclass(frozen=True)
class LabelRelevance:
    """Relevance by class label: gallery item g is relevant to query q when their labels match.

    With `exclude_self` (queries are the gallery, leave-one-out) item q is not relevant to query
    q. Indexing gives the relevant set of one query; `score_rankings` never builds all the sets.
    """

    query_labels: np.ndarray
    gallery_labels: np.ndarray
    exclude_self: bool = False

    def __len__(self) -> int:
        return len(self.query_labels)

    def __getitem__(self, query: int) -> set[int]:
        matches = np.flatnonzero(self.gallery_labels == self.query_labels[query])
        return set(matches.tolist()) - ({query} if self.exclude_self else set())

    def judge(self, rankings: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(hits, keep, n_relevant) for `rankings`, vectorised over queries."""
        keep = rankings >= 0
        ranked_labels = self.gallery_labels[np.where(keep, rankings, 0)]
        hits = ranked_labels == self.query_labels[:, None]
        classes, counts = np.unique(self.gallery_labels, return_counts=True)
        slot = np.searchsorted(classes, self.query_labels).clip(0, len(classes) - 1)
        n_relevant = np.where(classes[slot] == self.query_labels, counts[slot], 0)
        if self.exclude_self:
            keep &= rankings != np.arange(len(rankings))[:, None]
            n_relevant = np.maximum(n_relevant - 1, 0)
        return hits, keep, n_relevant


Relevance = Sequence[set[int]] | np.ndarray | LabelRelevance


@dataclass(frozen=True)
class RetrievalScores:
    """Mean AP, mean precision@k and recall@k over the scored queries, and how many there were."""

    map: float
    precision: dict[int, float]
    recall: dict[int, float]
    queries: int


def _check_ranked(ranked_relevant: np.ndarray, n_relevant: int) -> np.ndarray:
    """`ranked_relevant` as a 1-D bool array, checked against `n_relevant`."""
    hits = np.asarray(ranked_relevant, dtype=bool)
    if hits.ndim != 1:
        raise ArrayShapeError(f"ranked_relevant must be 1-D, got shape {hits.shape}")
    if n_relevant <= 0:
        raise EvaluationError(f"n_relevant must be positive, got {n_relevant}")
    if hits.sum() > n_relevant:
        raise EvaluationError(
            f"the ranking holds {int(hits.sum())} relevant items but n_relevant is {n_relevant}"
        )
    return hits


def average_precision(ranked_relevant: np.ndarray, n_relevant: int) -> float:
    """Non-interpolated AP: mean precision at each relevant rank, over all `n_relevant` items."""
    hits = _check_ranked(ranked_relevant, n_relevant)
    return float(_ap_rows(hits[None, :], np.array([n_relevant]))[0])


def precision_at_k(ranked_relevant: np.ndarray, k: int) -> float:
    """Fraction of the first k ranks that are relevant (ranks past the ranking count as misses)."""
    if k <= 0:
        raise EvaluationError(f"k must be positive, got {k}")
    return float(np.count_nonzero(np.asarray(ranked_relevant, dtype=bool)[:k]) / k)


def recall_at_k(ranked_relevant: np.ndarray, n_relevant: int, k: int) -> float:
    """Fraction of all `n_relevant` relevant items found in the first k ranks."""
    if k <= 0:
        raise EvaluationError(f"k must be positive, got {k}")
    hits = _check_ranked(ranked_relevant, n_relevant)
    return float(np.count_nonzero(hits[:k]) / n_relevant)


def precision_recall_curve(
    ranked_relevant: np.ndarray, n_relevant: int
) -> tuple[np.ndarray, np.ndarray]:
    """Precision and recall after each rank of one ranking (two arrays of its length)."""
    hits = _check_ranked(ranked_relevant, n_relevant)
    found = np.cumsum(hits)
    return found / np.arange(1, hits.size + 1), found / n_relevant


def _ap_rows(hits: np.ndarray, n_relevant: np.ndarray) -> np.ndarray:
    """AP of each row of a (Q, K) hit matrix."""
    precision = np.cumsum(hits, axis=1) / np.arange(1, hits.shape[1] + 1)
    scores: np.ndarray = (precision * hits).sum(axis=1) / n_relevant
    return scores


def _judge_sets(
    rankings: np.ndarray, relevant: Sequence[set[int]], junk: Sequence[set[int]] | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(hits, keep, n_relevant) for per-query sets of relevant and junk indices."""
    hits = np.zeros(rankings.shape, dtype=bool)
    keep = rankings >= 0
    n_relevant = np.zeros(len(rankings), dtype=np.int64)
    for q, row in enumerate(rankings):
        junk_q = junk[q] if junk is not None else set()
        positives = set(relevant[q]) - junk_q
        hits[q] = np.isin(row, list(positives))
        keep[q] &= ~np.isin(row, list(junk_q))
        n_relevant[q] = len(positives)
    return hits, keep, n_relevant


def _judge(
    rankings: np.ndarray, relevant: Relevance, junk: Sequence[set[int]] | None
) -> tuple[np.ndarray, np.ndarray]:
    """The hit matrix with dropped entries (junk, padding) squeezed out, and n_relevant."""
    if junk is not None and len(junk) != len(rankings):
        raise ArrayShapeError(f"junk has {len(junk)} entries for {len(rankings)} queries")
    if isinstance(relevant, LabelRelevance):
        if junk is not None:
            raise EvaluationError("junk sets need relevance given as sets or a matrix, not as "
                                  "labels; pass the relevant ids of each query instead")
        hits, keep, n_relevant = relevant.judge(rankings)
    elif isinstance(relevant, np.ndarray) and junk is None:
        if relevant.ndim != 2 or relevant.shape[0] != len(rankings):
            raise ArrayShapeError(
                f"relevance matrix must be (Q={len(rankings)}, G), got shape {relevant.shape}"
            )
        keep = rankings >= 0
        hits = np.take_along_axis(relevant.astype(bool), np.where(keep, rankings, 0), axis=1)
        n_relevant = relevant.sum(axis=1)
    else:
        sets = (
            [set(np.flatnonzero(r).tolist()) for r in relevant]
            if isinstance(relevant, np.ndarray)
            else relevant
        )
        hits, keep, n_relevant = _judge_sets(rankings, sets, junk)
    order = np.argsort(~keep, axis=1, kind="stable")
    return np.take_along_axis(hits & keep, order, axis=1), n_relevant


def _scored(
    rankings: np.ndarray, relevant: Relevance, junk: Sequence[set[int]] | None
) -> tuple[np.ndarray, np.ndarray]:
    """Hits and n_relevant of the queries that have at least one relevant item."""
    rankings = np.asarray(rankings, dtype=np.int64)
    if rankings.ndim != 2:
        raise ArrayShapeError(f"rankings must be (Q, K), got shape {rankings.shape}")
    if len(relevant) != len(rankings):
        raise ArrayShapeError(f"relevance has {len(relevant)} entries for {len(rankings)} queries")
    hits, n_relevant = _judge(rankings, relevant, junk)
    scored = n_relevant > 0
    if not scored.any():
        raise EvaluationError(f"none of the {len(rankings)} queries has a relevant gallery item")
    if not scored.all():
        log.info("skipping %d queries without relevant items", int((~scored).sum()))
    return hits[scored], n_relevant[scored]


def score_rankings(
    rankings: np.ndarray,
    relevant: Relevance,
    *,
    ks: Sequence[int] = (1, 10, 100),
    junk: Sequence[set[int]] | None = None,
) -> RetrievalScores:
    """mAP, precision@k and recall@k of (Q, K) rankings, junk removed before scoring."""
    if any(k <= 0 for k in ks):
        raise EvaluationError(f"every k must be positive, got {list(ks)}")
    hits, n_relevant = _scored(rankings, relevant, junk)
    found = {k: np.count_nonzero(hits[:, :k], axis=1) for k in ks}
    return RetrievalScores(
        map=float(_ap_rows(hits, n_relevant).mean()),
        precision={k: float((found[k] / k).mean()) for k in ks},
        recall={k: float((found[k] / n_relevant).mean()) for k in ks},
        queries=len(hits),
    )


def mean_pr_curve(
    rankings: np.ndarray,
    relevant: Relevance,
    *,
    points: int = 11,
    junk: Sequence[set[int]] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(recall levels 0..1, mean interpolated precision): max precision at recall >= level."""
    if points < 2:
        raise EvaluationError(f"points must be at least 2 (e.g. 11 or 101), got {points}")
    hits, n_relevant = _scored(rankings, relevant, junk)
    found = np.cumsum(hits, axis=1)
    precision = found / np.arange(1, hits.shape[1] + 1)
    recall = found / n_relevant[:, None]
    best_after = np.maximum.accumulate(precision[:, ::-1], axis=1)[:, ::-1]
    levels = np.linspace(0.0, 1.0, points)
    curve = np.empty(points)
    for i, level in enumerate(levels):
        reached = recall >= level - 1e-12
        first = reached.argmax(axis=1)
        best = np.take_along_axis(best_after, first[:, None], axis=1)[:, 0]
        curve[i] = np.where(reached.any(axis=1), best, 0.0).mean()
    return levels, curve


def ann_recall_at_k(approx_ids: np.ndarray, exact_ids: np.ndarray) -> float:
    """Mean fraction of each query's exact top-k (ids >= 0) that the approximate search found."""
    approx_ids, exact_ids = np.asarray(approx_ids), np.asarray(exact_ids)
    if approx_ids.ndim != 2 or exact_ids.ndim != 2 or len(approx_ids) != len(exact_ids):
        raise ArrayShapeError(
            f"approx_ids and exact_ids must be (Q, k) with the same Q, got shapes "
            f"{approx_ids.shape} and {exact_ids.shape}"
        )
    fractions = [
        np.isin(exact[exact >= 0], approx).mean()
        for approx, exact in zip(approx_ids, exact_ids, strict=True)
        if (exact >= 0).any()
    ]
    if not fractions:
        raise EvaluationError("exact_ids holds no valid id (all are negative)")
    return float(np.mean(fractions))


def _as_matrix(name: str, vectors: np.ndarray) -> np.ndarray:
    """`vectors` as a C-contiguous float32 (N, D) array."""
    matrix = np.ascontiguousarray(vectors, dtype=np.float32)
    if matrix.ndim != 2:
        raise ArrayShapeError(f"{name} must be (N, D), got shape {matrix.shape}")
    return matrix


def _top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k highest scores of each row, descending, and their column indices."""
    part = (
        np.argpartition(-scores, k - 1, axis=1)[:, :k]
        if k < scores.shape[1]
        else np.tile(np.arange(scores.shape[1]), (len(scores), 1))
    )
    part_scores = np.take_along_axis(scores, part, axis=1)
    order = np.argsort(-part_scores, axis=1, kind="stable")
    return np.take_along_axis(part_scores, order, axis=1), np.take_along_axis(part, order, axis=1)


def exact_search(
    queries: np.ndarray,
    gallery: np.ndarray,
    k: int,
    *,
    exclude_self: bool = False,
    block_bytes: int = _BLOCK_BYTES,
) -> tuple[np.ndarray, np.ndarray]:
    """Brute-force inner-product top-k by blocks of queries: float32 scores, int64 indices.

    With `exclude_self` query i is gallery row i and never ranks itself (leave-one-out). Where
    the gallery has fewer than k candidates the tail is padded with index -1 and score -inf.
    """
    queries, gallery = _as_matrix("queries", queries), _as_matrix("gallery", gallery)
    if queries.shape[1] != gallery.shape[1]:
        raise ArrayShapeError(
            f"queries have dimension {queries.shape[1]} but the gallery {gallery.shape[1]}"
        )
    if exclude_self and len(queries) != len(gallery):
        raise ArrayShapeError(
            f"exclude_self needs queries == gallery rows, got {len(queries)} and {len(gallery)}"
        )
    if k <= 0:
        raise EvaluationError(f"k must be positive, got {k}")
    out_scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
    out_ids = np.full((len(queries), k), -1, dtype=np.int64)
    width = min(k, len(gallery) - int(exclude_self))
    if width <= 0:
        return out_scores, out_ids
    block = max(1, block_bytes // (4 * len(gallery)))
    for start in range(0, len(queries), block):
        scores = queries[start : start + block] @ gallery.T
        if exclude_self:
            rows = np.arange(len(scores))
            scores[rows, rows + start] = -np.inf
        top_scores, top_ids = _top_k(scores, width)
        out_scores[start : start + block, :width] = top_scores
        out_ids[start : start + block, :width] = top_ids
    return out_scores, out_ids


def labels_relevance(
    query_labels: np.ndarray, gallery_labels: np.ndarray, *, exclude_self: bool = False
) -> LabelRelevance:
    """Relevance for labelled benchmarks (Fashion-MNIST, digits): same class = relevant."""
    query_labels, gallery_labels = np.asarray(query_labels), np.asarray(gallery_labels)
    if query_labels.ndim != 1 or gallery_labels.ndim != 1:
        raise ArrayShapeError(
            f"labels must be 1-D, got shapes {query_labels.shape} and {gallery_labels.shape}"
        )
    if exclude_self and len(query_labels) != len(gallery_labels):
        raise ArrayShapeError(
            f"exclude_self needs as many query as gallery labels, got "
            f"{len(query_labels)} and {len(gallery_labels)}"
        )
    return LabelRelevance(query_labels, gallery_labels, exclude_self)


def _label_ap_block(
    queries: np.ndarray, query_labels: np.ndarray, gallery: np.ndarray,
    gallery_labels: np.ndarray, start: int | None,
) -> np.ndarray:
    """AP of each query of a block over the full ranking; `start` set means leave-one-out."""
    scores = queries @ gallery.T
    if start is not None:
        scores[np.arange(len(scores)), np.arange(start, start + len(scores))] = -np.inf
    order = np.argsort(-scores, axis=1, kind="stable")[:, : len(gallery) - (start is not None)]
    hits = gallery_labels[order] == query_labels[:, None]
    n_relevant = hits.sum(axis=1)
    scored = n_relevant > 0
    return _ap_rows(hits[scored], n_relevant[scored])


def label_map(
    vectors: np.ndarray,
    labels: np.ndarray,
    *,
    gallery: np.ndarray | None = None,
    gallery_labels: np.ndarray | None = None,
    block: int = _LABEL_MAP_BLOCK,
) -> float:
    """mAP by class label over full inner-product rankings, computed by blocks of queries.

    Each vector queries all the others (leave-one-out), or the `gallery` where one is given
    (Fashion-MNIST test against train, say). Queries with no relevant item are not scored.
    """
    queries, labels = _as_matrix("vectors", vectors), np.asarray(labels)
    leave_one_out = gallery is None
    if gallery is None:
        gallery, gallery_labels = queries, labels
    if gallery_labels is None:
        raise ArrayShapeError("gallery_labels are needed with a gallery")
    gallery, gallery_labels = _as_matrix("gallery", gallery), np.asarray(gallery_labels)
    if labels.shape != (len(queries),) or gallery_labels.shape != (len(gallery),):
        raise ArrayShapeError(
            f"need one label per vector: {labels.shape} labels for {len(queries)} queries, "
            f"{gallery_labels.shape} for {len(gallery)} gallery vectors"
        )
    aps = [
        _label_ap_block(queries[i : i + block], labels[i : i + block], gallery,
                        gallery_labels, i if leave_one_out else None)
        for i in range(0, len(queries), block)
    ]
    scored = np.concatenate(aps) if aps else np.zeros(0)
    if not scored.size:
        raise EvaluationError(f"none of the {len(queries)} queries has a relevant gallery item")
    return float(scored.mean())
