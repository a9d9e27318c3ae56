"""Similarity search restricted to a set of ids, returning k of them whenever k are indexed.

A FAISS replica searches with an IDSelector, so the restriction is applied inside the
search. An approximate index (IVF probing few lists, HNSW with a tight selector) may still
find fewer than k of the allowed ids: then the allowed ids are scored exactly, from their
stored vectors, which always gives the true top k. A Milvus collection filters inside
Milvus: on its own collection and label fields when those are all a search restricts (no id
list however large the catalog), else on the ids (`id in [...]`)."""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np
from sqlalchemy.orm import Session

from lookalike.retrieval.index.faiss_index import SearchHits
from lookalike.services.index.backend import SpaceIndex
from lookalike.services.index.milvus_replica import MilvusReplica
from lookalike.services.index.replicas import IndexReplica
from lookalike.services.search.filters import Filters, allowed_ids

EXACT_LIMIT = 200_000


def _exact(replica: IndexReplica, query: np.ndarray, k: int, allowed: np.ndarray) -> SearchHits:
    """Inner products of the query with every allowed vector the index holds; the top k."""
    present = [int(i) for i in allowed if replica.contains(int(i))]
    ids = np.full((1, k), -1, dtype=np.int64)
    scores = np.full((1, k), -np.inf, dtype=np.float32)
    if present:
        vectors = np.stack([replica.reconstruct(i) for i in present])
        found = vectors @ query[0]
        order = np.argsort(-found, kind="stable")[:k]
        ids[0, :len(order)] = np.asarray(present, dtype=np.int64)[order]
        scores[0, :len(order)] = found[order]
    return SearchHits(scores=scores, ids=ids)


def filtered_search(replica: SpaceIndex, query: np.ndarray, k: int,
                    allowed: np.ndarray) -> SearchHits:
    """The top k of the `allowed` ids for a (1, D) query."""
    if not len(allowed):
        return SearchHits(scores=np.full((1, k), -np.inf, dtype=np.float32),
                          ids=np.full((1, k), -1, dtype=np.int64))
    if isinstance(replica, MilvusReplica):
        return replica.search(query, k, where=f"id in {allowed.tolist()}")
    hits = replica.search(query, k, allowed=allowed)
    found = int((hits.ids[0] >= 0).sum())
    if found >= min(k, len(allowed)) or len(allowed) > EXACT_LIMIT:
        return hits
    return _exact(replica, query, k, allowed)


_ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"})


def milvus_fields(filters: Filters) -> str | None:
    """The filters as a Milvus expression over the collection's own fields (each value a
    quoted, escaped string literal), when collection and label are all they ask."""
    if filters.topic is not None or filters.text is not None or filters.video_label is not None:
        return None
    return " and ".join(f'{name} == "{value.translate(_ESCAPES)}"'
                        for name, value in filters.columns().items())


def restricted_search(replica: SpaceIndex, session: Session,
                      filters: Filters) -> Callable[[np.ndarray, int], SearchHits]:
    """The replica's search restricted by `filters`: by a Milvus collection's own fields
    where they suffice, else to the ids of the live images that pass."""
    where = milvus_fields(filters) if isinstance(replica, MilvusReplica) else None
    if isinstance(replica, MilvusReplica) and where is not None:
        return functools.partial(replica.search, where=where)
    return functools.partial(filtered_search, replica, allowed=allowed_ids(session, filters))
