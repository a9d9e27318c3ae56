"""Writing and rebuilding each space's index snapshot from the catalog."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from lookalike.services.catalog import spaces as space_queries
from lookalike.services.catalog.models import Space
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
            replica = runtime.replica(space, session=session)
            manifest = replica.snapshot(session, keep=runtime.settings.snapshot_keep,
                                        layout=runtime.settings.layout)
            session.commit()
            reports.append(SnapshotReport(space.name, manifest.ntotal, manifest.watermark,
                                          manifest.file))
    return reports


def rebuild_all(runtime: Runtime, *, space_name: str | None = None,
                factory: str | None = None) -> list[SnapshotReport]:
    """Recreate each space's index from the catalog alone and snapshot it."""
    reports = []
    with runtime.session() as session:
        for space in _selected(session, space_name):
            if factory is not None:
                space.options = space.options.model_copy(update={"index_factory": factory})
            directory = space_directory(runtime.settings.layout.indexes, space)
            replica: IndexReplica = rebuild(space=space, directory=directory, session=session,
                                            factory=space.options.index_factory)
            replica.catch_up(session)
            manifest = replica.snapshot(session, keep=runtime.settings.snapshot_keep,
                                        layout=runtime.settings.layout)
            session.commit()
            reports.append(SnapshotReport(space.name, manifest.ntotal, manifest.watermark,
                                          manifest.file))
    return reports
