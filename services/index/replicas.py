"""Keeps each space's FAISS replica in step with the catalog: snapshot + changes after it."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from lookalike.retrieval.index.faiss_index import SearchHits, VectorIndex
from lookalike.retrieval.index.layered import LayeredIndex
from lookalike.retrieval.index.persistence import load_latest_snapshot, save_snapshot
from lookalike.retrieval.index.snapshot import SnapshotManifest, prune_snapshots
from lookalike.services.catalog import embeddings as embedding_queries
from lookalike.services.catalog import snapshots as snapshot_queries
from lookalike.services.catalog.embeddings import Change
from lookalike.services.catalog.models import Space
from lookalike.services.storage.layout import DataLayout

log = logging.getLogger(__name__)

CATCH_UP_BATCH = 10_000


def space_directory(indexes_dir: Path, space: Space) -> Path:
    """Where a space's snapshots live: by id, so renaming a space never orphans its files."""
    return indexes_dir / f"space-{space.id}"


OWNER_KEYS = ("space_id", "space_created_at")


def _snapshot_owner(space: Space) -> dict[str, Any]:
    """What a snapshot records of the space it was written for: its id and creation time,
    which no other space has together even where a database gives an id out again, and its
    name for people reading the manifest."""
    created = space.created_at.isoformat() if space.created_at is not None else None
    return {"space": space.name, "space_id": space.id, "space_created_at": created}


def _written_for(manifest: SnapshotManifest, space: Space) -> bool:
    """Whether the snapshot was written for this very space, not for one that had its id
    before (a manifest that records no owner proves nothing and is refused too)."""
    owner = _snapshot_owner(space)
    return all(manifest.extra.get(key) == owner[key] for key in OWNER_KEYS)


def vectors_from_bytes(blobs: Iterable[bytes], dim: int) -> np.ndarray:
    """Catalog blobs (float32 little-endian) to one (N, dim) float32 array."""
    joined = b"".join(blobs)
    return np.frombuffer(joined, dtype="<f4").reshape(-1, dim).astype(np.float32, copy=True)


class IndexReplica:
    """One space's in-memory index and the catalog sequence number it reflects. Its ids are
    image ids, or region ids in a region space (`Change.key`).

    Catch-up adds to the index while searches read it, and FAISS is not safe for an add
    beside a search: every read and every write goes through this replica's methods, which
    hold its lock. No caller touches the index itself."""

    def __init__(self, *, space: Space, directory: Path, index: VectorIndex | LayeredIndex,
                 watermark: int):
        self.space_id = space.id
        self.space_name = space.name
        self.dim = space.dim
        self.directory = directory
        self._index = index
        self.watermark = watermark
        self.search_params = dict(space.options.search_params)
        self._owner = _snapshot_owner(space)
        self._lock = threading.RLock()

    @classmethod
    def open(cls, *, space: Space, directory: Path, session: Session) -> IndexReplica:
        """Load the space's newest valid snapshot (or rebuild from the catalog), then catch up."""
        factory = space.options.index_factory
        loaded = load_latest_snapshot(directory)
        if loaded is not None and _serves(loaded[1], space, directory):
            index, manifest = loaded
            replica = cls(space=space, directory=directory, index=index,
                          watermark=manifest.watermark)
            log.info("space %s: snapshot at seq %d loaded", space.name, manifest.watermark)
        else:
            replica = rebuild(space=space, directory=directory, session=session, factory=factory)
        replica.catch_up(session)
        return replica

    def catch_up(self, session: Session) -> int:
        """Apply every catalog change after the watermark; returns how many were applied."""
        applied = 0
        with self._lock:
            while True:
                changes = embedding_queries.changes_since(
                    session=session, space_id=self.space_id, watermark=self.watermark,
                    limit=CATCH_UP_BATCH)
                if not changes:
                    return applied
                self._apply(changes)
                applied += len(changes)

    def refresh(self, session: Session) -> None:
        """Catch up when the catalog has moved past this replica (one cheap query otherwise)."""
        latest = embedding_queries.latest_seq(session=session, space_id=self.space_id)
        if latest > self.watermark:
            self.catch_up(session)

    def lag(self, session: Session) -> int:
        """How many catalog changes this replica has not applied yet."""
        latest = embedding_queries.latest_seq(session=session, space_id=self.space_id)
        return max(0, latest - self.watermark)

    @property
    def ntotal(self) -> int:
        """How many live vectors the index holds."""
        with self._lock:
            return self._index.ntotal

    def ids(self) -> np.ndarray:
        """Every live id, int64, sorted ascending."""
        with self._lock:
            return self._index.ids()

    def search(self, queries: np.ndarray, k: int, *,
               allowed: np.ndarray | None = None) -> SearchHits:
        """Top-k ids of each query row, with the space's search parameters; only the
        `allowed` ids when given."""
        with self._lock:
            return self._index.search(queries, k, params=self.search_params, allowed=allowed)

    def contains(self, image_id: int) -> bool:
        """Whether the index holds a live vector of this id."""
        with self._lock:
            return self._index.contains(image_id)

    def reconstruct(self, image_id: int) -> np.ndarray:
        """The stored vector of a live id; IndexIdNotFound when it is not in the index."""
        with self._lock:
            return self._index.reconstruct(image_id)

    def vectors(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The `ids` still live and their stored vectors, (N,) int64 and (N, dim) float32,
        read in one hold of the lock: an id that catch-up removed since the caller found it
        in a search is skipped, not an error."""
        with self._lock:
            found = [int(i) for i in ids if self._index.contains(int(i))]
            rows = [self._index.reconstruct(i) for i in found]
        return (np.array(found, dtype=np.int64),
                np.array(rows, dtype=np.float32).reshape(len(found), self.dim))

    def snapshot(self, session: Session, *, keep: int, layout: DataLayout) -> SnapshotManifest:
        """Write the replica to disk atomically and record it in the catalog (its file
        relative to the home, as `layout` records paths)."""
        with self._lock:
            manifest = save_snapshot(self._index, self.directory, watermark=self.watermark,
                                     extra=self._owner)
        snapshot_queries.record_snapshot(
            session=session, space_id=self.space_id,
            path=layout.stored(self.directory / manifest.file),
            factory=manifest.factory, vector_count=manifest.ntotal,
            watermark=manifest.watermark, sha256=manifest.sha256)
        prune_snapshots(self.directory, keep=keep)
        return manifest

    def _apply(self, changes: list[Change]) -> None:
        """Apply changes in sequence order, batching runs of adds into one FAISS call (the
        caller, catch_up, holds the lock)."""
        run: list[Change] = []
        for change in changes:
            if change.op == "add" and change.vector is not None:
                run.append(change)
                continue
            self._add_run(run)
            run = []
            self._index.remove(np.array([change.key], dtype=np.int64))
        self._add_run(run)
        self.watermark = changes[-1].seq

    def _add_run(self, run: list[Change]) -> None:
        if not run:
            return
        ids = np.array([c.key for c in run], dtype=np.int64)
        self._index.add(ids, vectors_from_bytes((c.vector for c in run), self.dim))


def _serves(manifest: SnapshotManifest, space: Space, directory: Path) -> bool:
    """Whether a snapshot can serve the space: its dimension and index type, written for it.
    One written for another space is logged and left alone: the catalog rebuilds the index."""
    if (manifest.dim, manifest.factory) != (space.dim, space.options.index_factory):
        return False
    if not _written_for(manifest, space):
        owner = {key: manifest.extra.get(key) for key in ("space", *OWNER_KEYS)}
        log.warning("snapshot %s ignored: written for %s, not for space %s (id %d, created %s); "
                    "rebuilding from the catalog", directory / manifest.file, owner, space.name,
                    space.id, space.created_at)
        return False
    return True


def rebuild(*, space: Space, directory: Path, session: Session, factory: str) -> IndexReplica:
    """A fresh index of the space built from the catalog alone (the source of truth)."""
    # The watermark is read first: changes that land while we read are replayed by catch_up,
    # which is safe because adds are upserts and removes are idempotent.
    watermark = embedding_queries.latest_seq(session=session, space_id=space.id)
    index = VectorIndex(space.dim, factory=factory)
    batches = embedding_queries.iter_vectors(session=session, space_id=space.id)
    if index.is_trained:  # Flat, HNSW: add batch by batch, never holding all vectors twice
        for batch_ids, batch_vectors, _ in batches:
            index.add(np.array(batch_ids, dtype=np.int64),
                      vectors_from_bytes(batch_vectors, space.dim))
    else:
        ids: list[int] = []
        blobs: list[bytes] = []
        for batch_ids, batch_vectors, _ in batches:
            ids.extend(batch_ids)
            blobs.extend(batch_vectors)
        vectors = vectors_from_bytes(blobs, space.dim)
        index.train(vectors)
        if ids:
            index.add(np.array(ids, dtype=np.int64), vectors)
    log.info("space %s: rebuilt from catalog, %d vectors, seq %d", space.name, index.ntotal,
             watermark)
    return IndexReplica(space=space, directory=directory, index=index, watermark=watermark)
