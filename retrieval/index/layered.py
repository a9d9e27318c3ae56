"""A snapshot mapped from its file plus the changes after it: start-up in seconds at any size.

Reading a 1M x 1280 Flat snapshot copies 4.9 GB into memory, and FAISS copies it again on
the first add after that (its vector grows). Mapping the file takes milliseconds instead, but
a mapped FAISS index can never grow or shrink. So the mapped snapshot is the read-only base,
new and replaced vectors go to a small in-memory delta, removals mark base rows dead, and a
search asks both and merges. Writing a snapshot folds the two into one ordinary file again.
"""

from __future__ import annotations

import logging
import threading

import faiss
import numpy as np

from lookalike.retrieval.errors import IndexIdNotFound, IndexTrainingError
from lookalike.retrieval.index.faiss_index import SearchHits, SearchParams, VectorIndex
from lookalike.retrieval.index.snapshot import ByteSink

log = logging.getLogger(__name__)


def mappable(factory: str, dim: int) -> bool:
    """Whether snapshots of this factory type can serve as a mapped base: untrained flat codes
    (Flat, SQfp16), whose merged snapshot is a plain copy of rows (an HNSW graph or IVF lists
    would have to be rebuilt)."""
    fresh = faiss.downcast_index(faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT))
    return fresh.is_trained and isinstance(fresh, faiss.IndexFlatCodes)


class LayeredIndex:
    """A read-only mapped `base` and an in-memory `delta` that behave as one VectorIndex.

    Every id lives in at most one layer: an add removes the id from the base (marks it dead)
    and upserts it in the delta.
    """

    def __init__(self, base: VectorIndex) -> None:
        if not base.mapped:
            raise ValueError("the base of a LayeredIndex must be mapped from a snapshot file")
        self.base = base
        self.delta = VectorIndex(base.dim, factory=base.factory)
        self.dim = base.dim
        self.factory = base.factory
        self._lock = threading.RLock()

    @property
    def ntotal(self) -> int:
        return self.base.ntotal + self.delta.ntotal

    @property
    def is_trained(self) -> bool:
        return True

    def train(self, vectors: np.ndarray) -> None:
        raise IndexTrainingError(f"cannot train index '{self.factory}': it already holds "
                                 f"{self.ntotal} rows from a snapshot")

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Upsert into the delta; a base row of the same id stops being found."""
        with self._lock:
            self.delta.add(ids, vectors)
            self.base.remove(np.asarray(ids, dtype=np.int64))

    def remove(self, ids: np.ndarray) -> int:
        with self._lock:
            return self.base.remove(ids) + self.delta.remove(ids)

    def contains(self, image_id: int) -> bool:
        with self._lock:
            return self.base.contains(image_id) or self.delta.contains(image_id)

    def ids(self) -> np.ndarray:
        with self._lock:
            return np.union1d(self.base.ids(), self.delta.ids())

    def reconstruct(self, image_id: int) -> np.ndarray:
        with self._lock:
            for layer in (self.delta, self.base):
                if layer.contains(image_id):
                    return layer.reconstruct(image_id)
        raise IndexIdNotFound(f"id {image_id} is not in the index ({self.ntotal} live ids)")

    def search(self, queries: np.ndarray, k: int, *,
               params: SearchParams | None = None,
               allowed: np.ndarray | None = None) -> SearchHits:
        """The top k of both layers' top k, by score (of the `allowed` ids only, if given)."""
        with self._lock:
            base = self.base.search(queries, k, params=params, allowed=allowed)
            if not self.delta.ntotal:
                return base
            delta = self.delta.search(queries, k, params=params, allowed=allowed)
        scores = np.concatenate([base.scores, delta.scores], axis=1)
        ids = np.concatenate([base.ids, delta.ids], axis=1)
        order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        return SearchHits(scores=np.take_along_axis(scores, order, axis=1),
                          ids=np.take_along_axis(ids, order, axis=1))

    def write_to(self, sink: ByteSink) -> None:
        """Stream one ordinary index holding both layers' live rows (built in memory first)."""
        with self._lock:
            merged = VectorIndex(self.dim, factory=self.factory)
            for layer in (self.base, self.delta):
                for ids, vectors in layer.live_rows():
                    merged.add(ids, vectors)
            merged.write_to(sink)
