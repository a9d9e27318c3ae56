"""Similarity search restricted to a set of ids, returning k of them whenever k are indexed.

A FAISS replica searches with an IDSelector, so the restriction is applied inside the
search. An approximate index (IVF probing few lists, HNSW with a tight selector) may still
find fewer than k of the allowed ids: then the allowed ids are scored exactly, from their
stored vectors, which always gives the true top k. A Milvus collection takes the same ids
as a scalar filter expression (`id in [...]`), evaluated inside Milvus."""

from __future__ import annotations

import numpy as np

from lookalike.retrieval.index.faiss_index import SearchHits
from lookalike.services.index.backend import SpaceIndex
from lookalike.services.index.milvus_replica import MilvusReplica
from lookalike.services.index.replicas import IndexReplica

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
