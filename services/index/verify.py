"""`index verify`: compare each space's index (newest snapshot + catch-up) with the catalog."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sqlalchemy.orm import Session

from lookalike.retrieval.index.snapshot import file_problem, list_snapshots
from lookalike.services.catalog import embeddings as embedding_queries
from lookalike.services.catalog import snapshots as snapshot_queries
from lookalike.services.catalog import spaces as space_queries
from lookalike.services.catalog.models import Space
from lookalike.services.index.follower import apply_all, entities
from lookalike.services.index.milvus_store import MilvusCollection, collection_name
from lookalike.services.index.replicas import IndexReplica, space_directory, vectors_from_bytes
from lookalike.services.runtime import Runtime

STALE_TOLERANCE = 1e-3
SAMPLE = 10


@dataclass
class VerifyReport:
    """What one space's index lacks, holds in excess, or holds out of date."""

    space: str
    vectors: int
    missing: list[int] = field(default_factory=list)
    extra: list[int] = field(default_factory=list)
    stale: list[int] = field(default_factory=list)
    broken_snapshots: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.extra or self.stale or self.broken_snapshots)

    def advice(self) -> str:
        if self.ok:
            return "index matches the catalog"
        fixes = [f"{len(self.missing)} missing ids (e.g. {self.missing[:SAMPLE]})",
                 f"{len(self.extra)} extra ids (e.g. {self.extra[:SAMPLE]})",
                 f"{len(self.stale)} stale vectors (e.g. {self.stale[:SAMPLE]})"]
        broken = (f"; broken snapshot files never loaded: {', '.join(self.broken_snapshots)}"
                  if self.broken_snapshots else "")
        return (f"{'; '.join(fixes)}{broken}. `lookalike index rebuild --space {self.space}` "
                "recreates the index from the catalog and writes a fresh snapshot")


def verify_all(runtime: Runtime) -> list[VerifyReport]:
    """One report per space; reads only (nothing is rewritten; a Milvus space's follower
    first applies the change log, as a FAISS replica catches up in memory)."""
    with runtime.read_session() as session:
        spaces = space_queries.list_spaces(session=session)
        session.expunge_all()
    return [verify_milvus(runtime, space) if space.options.backend == "milvus"
            else _verify_faiss(runtime, space) for space in spaces]


def _verify_faiss(runtime: Runtime, space: Space) -> VerifyReport:
    with runtime.session() as session:
        directory = space_directory(runtime.settings.layout.indexes, space)
        broken = [f"{m.file} ({problem})" for m in list_snapshots(directory)
                  if (problem := file_problem(directory, m)) is not None]
        broken.extend(_lost_snapshot(session, space.id, directory))
        replica = IndexReplica.open(space=space, directory=directory, session=session)
        report = VerifyReport(space.name, replica.ntotal, broken_snapshots=broken)
        _compare(session, space.id, space.dim, replica, report)
    return report


def _lost_snapshot(session: Session, space_id: int, directory: Path) -> list[str]:
    """The newest snapshot the catalog recorded, if its file is gone from the index folder
    (pruning keeps the newest, so only a hand or a lost disk removes it)."""
    recorded = snapshot_queries.latest_snapshot(session=session, space_id=space_id)
    if recorded is None or (directory / Path(recorded.path).name).is_file():
        return []
    return [f"{Path(recorded.path).name} (recorded in the catalog at sequence "
            f"{recorded.watermark}, but the file is missing)"]


def _compare(session, space_id: int, dim: int, replica: IndexReplica,
             report: VerifyReport) -> None:
    indexed = {int(i) for i in replica.ids()}
    catalogued: set[int] = set()
    for ids, blobs, _ in embedding_queries.iter_vectors(session=session, space_id=space_id):
        catalogued.update(ids)
        vectors = vectors_from_bytes(blobs, dim)
        for image_id, vector in zip(ids, vectors, strict=True):
            if image_id not in indexed:
                report.missing.append(image_id)
            elif np.abs(replica.reconstruct(image_id) - vector).max() > STALE_TOLERANCE:
                report.stale.append(image_id)
    report.extra = sorted(indexed - catalogued)


def verify_milvus(runtime: Runtime, space: Space) -> VerifyReport:
    """Compare a Milvus space's collection with the catalog, once its follower has applied
    the change log: ids missing or extra, vectors or filter fields out of date. A collection
    that is gone is reported with every catalog id missing (never recreated here)."""
    store = MilvusCollection(runtime.milvus(), collection_name(runtime.settings, space),
                             space.dim)
    exists = store.exists()
    if exists:
        store.open(space.options.milvus_index)
        for _ in apply_all(runtime.session, space_id=space.id, dim=space.dim, store=store):
            pass
    fields = {e.image_id: (e.collection, e.label) for e in store.entities()} if exists else {}
    held = set(fields)
    report = VerifyReport(space.name, len(held))
    with runtime.read_session() as session:
        _compare_milvus(session, space, store if exists else None, fields, report)
    return report


def _compare_milvus(session: Session, space: Space, store: MilvusCollection | None,
                    fields: dict[int, tuple[str | None, str | None]],
                    report: VerifyReport) -> None:
    catalogued: set[int] = set()
    for ids, blobs, _ in embedding_queries.iter_vectors(session=session, space_id=space.id):
        catalogued.update(ids)
        stored = store.vectors(ids) if store is not None else {}
        for want in entities(session, ids, blobs, space.dim,
                             regions=space.options.regions_of is not None):
            have = stored.get(want.image_id)
            if have is None:
                report.missing.append(want.image_id)
            elif (np.abs(have - want.vector).max() > STALE_TOLERANCE
                  or fields[want.image_id] != (want.collection, want.label)):
                report.stale.append(want.image_id)
    report.extra = sorted(set(fields) - catalogued)
