"""The Milvus follower: applies a space's catalog change log to its collection, batch by batch,
and commits the watermark in the catalog after each batch.

Each batch holds the space's follower lock (catalog.followers) from reading the watermark to
committing the new one, so followers in any number of processes never interleave. Within a
batch only each image's last change counts: an upsert of its current vector (with its
collection and label) or a delete. Both are keyed by catalog id and safe to repeat, so a
follower killed anywhere in a batch leaves the watermark where it was, and the next one
replays the batch to the same end state: nothing lost, nothing twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass

from sqlalchemy.orm import Session

from lookalike.services.catalog import embeddings as embedding_queries
from lookalike.services.catalog import followers as follower_queries
from lookalike.services.catalog import images as image_queries
from lookalike.services.catalog.schemas import Change
from lookalike.services.index.milvus_store import Entity, MilvusCollection
from lookalike.services.index.replicas import vectors_from_bytes

log = logging.getLogger(__name__)

FOLLOW_BATCH = 10_000
WRITE_CHUNK = 1000

SessionFactory = Callable[[], AbstractContextManager[Session]]


@dataclass(frozen=True)
class Applied:
    """What one batch did: changes read, rows upserted and deleted, the new watermark."""

    changes: int
    upserted: int
    deleted: int
    watermark: int


def entities(session: Session, ids: list[int], blobs: list[bytes], dim: int, *,
             regions: bool = False) -> list[Entity]:
    """Rows for Milvus: vectors with each image's collection and label from the catalog (in
    a region space the ids are regions', and the fields their image's)."""
    owner = (embedding_queries.region_images(session=session, region_ids=ids) if regions
             else {i: i for i in ids})
    rows = image_queries.images_by_ids(session=session, ids=sorted(set(owner.values())))
    vectors = vectors_from_bytes(blobs, dim)
    found = {i: rows[owner[i]] for i in ids if i in owner and owner[i] in rows}
    return [Entity(i, v, found[i].collection if i in found else None,
                   found[i].label if i in found else None)
            for i, v in zip(ids, vectors, strict=True)]


def _final(changes: list[Change]) -> tuple[dict[int, bytes], list[int]]:
    """Each id's last change in the batch: (id -> vector to upsert, ids to delete). An add
    whose embedding has since gone (vector None) deletes: its remove follows in the log."""
    last = {change.key: change for change in changes}
    upserts = {i: c.vector for i, c in last.items() if c.op == "add" and c.vector is not None}
    return upserts, sorted(set(last) - set(upserts))


def apply_batch(sessions: SessionFactory, *, space_id: int, dim: int,
                store: MilvusCollection, limit: int = FOLLOW_BATCH,
                chunk: int = WRITE_CHUNK) -> Applied | None:
    """Apply the next batch of changes after the stored watermark; None when there are none."""
    with sessions() as session:
        watermark = follower_queries.lock_follower(session=session, space_id=space_id)
        changes = embedding_queries.changes_since(session=session, space_id=space_id,
                                                  watermark=watermark, limit=limit)
        if not changes:
            session.rollback()
            return None
        upserts, deletes = _final(changes)
        regions = embedding_queries.is_region_space(session=session, space_id=space_id)
        rows = entities(session, sorted(upserts), [upserts[i] for i in sorted(upserts)], dim,
                        regions=regions)
        store.delete(deletes)
        first, last = changes[0].seq, changes[-1].seq
        for start in range(0, len(rows), chunk):
            store.upsert(rows[start:start + chunk])
            log.info("space %d: batch seq %d..%d: %d of %d rows written", space_id, first, last,
                     min(start + chunk, len(rows)), len(rows))
        follower_queries.set_follower_watermark(session=session, space_id=space_id,
                                                watermark=last)
        session.commit()
    log.info("space %d: follower at seq %d (%d upserted, %d deleted)", space_id, last,
             len(rows), len(deletes))
    return Applied(len(changes), len(rows), len(deletes), last)


def apply_all(sessions: SessionFactory, *, space_id: int, dim: int, store: MilvusCollection,
              limit: int = FOLLOW_BATCH, chunk: int = WRITE_CHUNK) -> Iterator[Applied]:
    """Apply batches until the collection holds every change in the log."""
    while (applied := apply_batch(sessions, space_id=space_id, dim=dim, store=store,
                                  limit=limit, chunk=chunk)) is not None:
        yield applied


def refill(sessions: SessionFactory, *, space_id: int, dim: int,
           store: MilvusCollection) -> int:
    """Fill an emptied collection from the catalog's vectors alone and set the watermark to
    the sequence number they are consistent with (changes after it are replayed by
    `apply_all`); how many vectors were written. Holds the follower lock throughout."""
    written = 0
    with sessions() as session:
        follower_queries.lock_follower(session=session, space_id=space_id)
        watermark = embedding_queries.latest_seq(session=session, space_id=space_id)
        # Read before the vectors: any change after it is in them too and is replayed,
        # which upserts and deletes make harmless.
        regions = embedding_queries.is_region_space(session=session, space_id=space_id)
        for ids, blobs, _ in embedding_queries.iter_vectors(session=session, space_id=space_id):
            store.upsert(entities(session, ids, blobs, dim, regions=regions))
            written += len(ids)
        follower_queries.set_follower_watermark(session=session, space_id=space_id,
                                                watermark=watermark)
        session.commit()
    return written
