"""Writing and rebuilding each space's index snapshot from the catalog."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from lookalike.services.catalog import followers as follower_queries
from lookalike.services.catalog import spaces as space_queries
from lookalike.services.catalog.models import Space
from lookalike.services.index.follower import apply_all, refill
from lookalike.services.index.milvus_store import MilvusCollection, collection_name
from lookalike.services.index.replicas import IndexReplica, rebuild, space_directory
from lookalike.services.runtime import Runtime
from lookalike.services.spaces.lookup import find_space


@dataclass(frozen=True)
class SnapshotReport:
    space: str
    vectors: int
    watermark: int
    file: str


def _selected(session: Session, space_name: str | None) -> list[Space]:
    """The named space (an unknown name is an error), or every space."""
    if space_name is not None:
        return [find_space(session=session, name=space_name)]
    return space_queries.list_spaces(session=session)


def snapshot_all(runtime: Runtime, *, space_name: str | None = None) -> list[SnapshotReport]:
    """Bring each space's replica up to the catalog and write it as a new snapshot."""
    reports = []
    with runtime.session() as session:
        for space in _selected(session, space_name):
            if space.options.backend == "milvus":
                continue  # Milvus persists its collection itself; nothing to snapshot
            replica = runtime.replica(space, session=session)
            assert isinstance(replica, IndexReplica), "a FAISS space has a FAISS replica"
            manifest = replica.snapshot(session, keep=runtime.settings.snapshot_keep,
                                        layout=runtime.settings.layout)
            session.commit()
            reports.append(SnapshotReport(space.name, manifest.ntotal, manifest.watermark,
                                          manifest.file))
    return reports


def rebuild_all(runtime: Runtime, *, space_name: str | None = None,
                factory: str | None = None) -> list[SnapshotReport]:
    """Recreate each space's index from the catalog alone: snapshot a FAISS one, refill a
    Milvus collection."""
    with runtime.read_session() as session:
        spaces = _selected(session, space_name)
        session.expunge_all()
    return [rebuild_milvus(runtime, space) if space.options.backend == "milvus"
            else _rebuild_faiss(runtime, space, factory) for space in spaces]


def _rebuild_faiss(runtime: Runtime, space: Space, factory: str | None) -> SnapshotReport:
    with runtime.session() as session:
        space = session.merge(space)
        if factory is not None:
            space.options = space.options.model_copy(update={"index_factory": factory})
        directory = space_directory(runtime.settings.layout.indexes, space)
        replica: IndexReplica = rebuild(space=space, directory=directory, session=session,
                                        factory=space.options.index_factory)
        replica.catch_up(session)
        manifest = replica.snapshot(session, keep=runtime.settings.snapshot_keep,
                                        layout=runtime.settings.layout)
        session.commit()
    return SnapshotReport(space.name, manifest.ntotal, manifest.watermark, manifest.file)


def rebuild_milvus(runtime: Runtime, space: Space) -> SnapshotReport:
    """Drop the space's collection, create it again with the space's index and fill it from
    the catalog alone, then apply the changes that landed meanwhile."""
    name = collection_name(runtime.settings, space)
    store = MilvusCollection(runtime.milvus(), name, space.dim)
    store.drop()
    store.create(space.options.milvus_index)
    refill(runtime.session, space_id=space.id, dim=space.dim, store=store)
    for _ in apply_all(runtime.session, space_id=space.id, dim=space.dim, store=store):
        pass
    runtime.forget_index(space.id)
    with runtime.session() as session:
        watermark = follower_queries.follower_watermark(session=session, space_id=space.id)
    return SnapshotReport(space.name, store.count(), watermark, f"milvus:{name}")
