"""Database-side augmentation (DBA) at search time, as an exact re-ranking of a shortlist.

The live index changes every second, so its vectors are never rewritten. Instead each of the
query's top `dba_shortlist` candidates gets the vector full DBA would give it (itself plus its
top `dba_n` neighbours in the live index, weighted score**alpha, renormalised) and the query is
re-scored against those vectors. With αQE on as well, the query is expanded with its best
augmented candidates before the re-scoring: the order `lookalike evaluate` uses (DBA on the
gallery first, then αQE against the augmented gallery).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from lookalike.retrieval.embedding.expansion import (
    alpha_query_expansion,
    database_side_augmentation,
)
from lookalike.retrieval.index.faiss_index import SearchHits
from lookalike.services.catalog.documents import DEFAULT_SHORTLIST
from lookalike.services.catalog.models import Space
from lookalike.services.index.backend import SpaceIndex

DEFAULT_DBA_N = 5  # neighbours when a query asks for DBA in a space whose dba_n is 0


@dataclass(frozen=True)
class DbaPlan:
    """How one query is re-ranked: DBA neighbours, shortlist length, exponent, αQE neighbours."""

    n: int
    shortlist: int = DEFAULT_SHORTLIST
    alpha: float = 3.0
    qe_n: int = 0  # 0: no αQE


def dba_plan(space: Space, *, dba: bool | None, qe: bool) -> DbaPlan | None:
    """The query's choice when it makes one, else the space's `dba_n` (0 = off); None: off."""
    n = space.options.dba_n
    if dba is False or (dba is None and n <= 0):
        return None
    return DbaPlan(n=n if n > 0 else DEFAULT_DBA_N,
                   shortlist=space.options.dba_shortlist, alpha=space.options.qe_alpha,
                   qe_n=space.options.qe_n if qe else 0)


def dba_search(replica: SpaceIndex, query: np.ndarray, k: int, plan: DbaPlan,
               shortlist_search: Callable[[np.ndarray, int], SearchHits] | None = None
               ) -> SearchHits:
    """Top-k of the (1, D) query's top max(k, shortlist), ranked against their DBA vectors;
    `shortlist_search` finds the shortlist (a filtered search), else the replica's search.

    Every read goes through the replica (under its lock), so catch-up may add or remove
    between two of them: a candidate or neighbour removed meanwhile is left out."""
    shortlist = (shortlist_search or replica.search)(query, max(k, plan.shortlist))
    ids, augmented = augment(replica, shortlist.ids[0][shortlist.ids[0] >= 0], plan)
    if plan.qe_n:
        query = _expanded(query, augmented, plan)
    scores = augmented @ query[0]
    order = np.argsort(-scores, kind="stable")[:k]
    hits = SearchHits(scores=np.full((1, k), -np.inf, dtype=np.float32),
                      ids=np.full((1, k), -1, dtype=np.int64))
    hits.scores[0, :len(order)] = scores[order]
    hits.ids[0, :len(order)] = ids[order]
    return hits


def augment(replica: SpaceIndex, ids: np.ndarray,
            plan: DbaPlan) -> tuple[np.ndarray, np.ndarray]:
    """The `ids` still in the index and their DBA vectors, from one batched neighbour search."""
    ids, vectors = replica.vectors(ids)
    if not len(ids):
        return ids, vectors
    neighbour_ids, scores = _without_self(ids, replica.search(vectors, plan.n + 1), plan.n)
    extra_ids, extra_vectors = replica.vectors(np.setdiff1d(neighbour_ids[neighbour_ids >= 0],
                                                            ids))
    local_ids = np.concatenate([ids, extra_ids])
    unused = np.full((len(extra_ids), plan.n), -1, dtype=np.int64)
    rows = np.vstack([_rows_of(local_ids, neighbour_ids), unused])
    weights = np.vstack([scores, np.zeros(unused.shape, dtype=np.float32)])
    gallery = np.vstack([vectors, extra_vectors])
    augmented = database_side_augmentation(gallery, rows, weights, alpha=plan.alpha)
    return ids, augmented[: len(ids)]


def _without_self(ids: np.ndarray, hits: SearchHits, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Each candidate's first n neighbours other than itself: (ids, scores), each (C, n)."""
    others = hits.ids != ids[:, None]
    first = np.argsort(~others, axis=1, kind="stable")[:, :n]
    return (np.take_along_axis(hits.ids, first, axis=1),
            np.take_along_axis(hits.scores, first, axis=1))


def _rows_of(local_ids: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """Row of each wanted id in `local_ids`, -1 where it is absent (padding, removed)."""
    order = np.argsort(local_ids)
    at = np.minimum(np.searchsorted(local_ids, wanted, sorter=order), len(local_ids) - 1)
    rows = order[at]
    return np.where(local_ids[rows] == wanted, rows, -1)


def _expanded(query: np.ndarray, augmented: np.ndarray, plan: DbaPlan) -> np.ndarray:
    """αQE of the query with its best qe_n augmented candidates, as evaluate expands queries."""
    scores = augmented @ query[0]
    best = np.argsort(-scores, kind="stable")[: plan.qe_n]
    return alpha_query_expansion(query, augmented[best][None], scores[best][None],
                                 alpha=plan.alpha)
