"""A Milvus space seen as the search path sees a FAISS replica: search, read vectors back,
catch up with the catalog. The vectors live in the space's collection, shared by every
process; the follower (index.follower) brings it up to the catalog before a search that
finds it behind, so what any process added is searchable at once."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np
from sqlalchemy.orm import Session

from lookalike.retrieval.errors import IndexIdNotFound
from lookalike.retrieval.index.faiss_index import SearchHits
from lookalike.services.catalog import embeddings as embedding_queries
from lookalike.services.catalog import followers as follower_queries
from lookalike.services.catalog.models import Space
from lookalike.services.index.follower import SessionFactory, apply_all, refill
from lookalike.services.index.milvus_store import MilvusCollection

if TYPE_CHECKING:
    from pymilvus import MilvusClient

log = logging.getLogger(__name__)


class MilvusReplica:
    """One space's Milvus collection and the catalog watermark its follower last committed."""

    def __init__(self, *, space: Space, store: MilvusCollection, sessions: SessionFactory,
                 watermark: int) -> None:
        self.space_id = space.id
        self.space_name = space.name
        self.dim = space.dim
        self.store = store
        self.sessions = sessions
        self.watermark = watermark
        self.search_params = dict(space.options.milvus_index.search_params)

    @classmethod
    def open(cls, *, space: Space, client: MilvusClient, name: str, sessions: SessionFactory,
             session: Session) -> MilvusReplica:
        """Open (or create and fill from the catalog) the space's collection `name`, then
        catch up."""
        store = open_collection(space, client=client, name=name, sessions=sessions)
        replica = cls(space=space, store=store, sessions=sessions,
                      watermark=follower_queries.follower_watermark(session=session,
                                                                    space_id=space.id))
        replica.catch_up(session)
        return replica

    def catch_up(self, session: Session | None = None) -> int:
        """Apply every catalog change after the follower's watermark; how many."""
        applied = 0
        for batch in apply_all(self.sessions, space_id=self.space_id, dim=self.dim,
                               store=self.store):
            applied += batch.changes
            self.watermark = batch.watermark
        with self.sessions() as own:
            self.watermark = max(self.watermark, follower_queries.follower_watermark(
                session=own, space_id=self.space_id))
        return applied

    def refresh(self, session: Session) -> None:
        """Catch up when the catalog has moved past the collection's watermark (another
        process's follower may have got there first: then nothing is applied twice)."""
        if embedding_queries.latest_seq(session=session, space_id=self.space_id) > self.watermark:
            self.catch_up(session)

    def lag(self, session: Session) -> int:
        latest = embedding_queries.latest_seq(session=session, space_id=self.space_id)
        stored = follower_queries.follower_watermark(session=session, space_id=self.space_id)
        return max(0, latest - stored)

    @property
    def ntotal(self) -> int:
        return self.store.count()

    def ids(self) -> np.ndarray:
        """Every id in the collection, int64, sorted ascending."""
        return np.array(sorted(e.image_id for e in self.store.entities()), dtype=np.int64)

    def search(self, queries: np.ndarray, k: int, *, where: str = "") -> SearchHits:
        """Top-k ids of each query row, with the space's Milvus search parameters and an
        optional scalar filter expression."""
        return self.store.search(queries, k, params=self.search_params, where=where)

    def reconstruct(self, image_id: int) -> np.ndarray:
        found = self.store.vectors([image_id])
        if image_id not in found:
            raise IndexIdNotFound(f"id {image_id} is not in Milvus collection {self.store.name}")
        return found[image_id]

    def vectors(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The `ids` present and their stored vectors, in the order given (absent ones are
        skipped, as a FAISS replica skips ids removed meanwhile)."""
        found = self.store.vectors([int(i) for i in ids])
        kept = [int(i) for i in ids if int(i) in found]
        return (np.array(kept, dtype=np.int64),
                np.array([found[i] for i in kept], dtype=np.float32).reshape(len(kept), self.dim))


def open_collection(space: Space, *, client: MilvusClient, name: str,
                    sessions: SessionFactory) -> MilvusCollection:
    """The space's collection, loaded; created and filled from the catalog when absent."""
    store = MilvusCollection(client, name, space.dim)
    if store.exists():
        store.open(space.options.milvus_index)
        return store
    store.create(space.options.milvus_index)
    written = refill(sessions, space_id=space.id, dim=space.dim, store=store)
    log.info("space %s: Milvus collection %s filled with %d vectors", space.name, name, written)
    return store
