"""A space's life after creation: listed with its size, lag and last evaluation, made the
default, deleted with its vectors and files.

Every API process resolves the default space per request from the catalog, so one committed
switch moves them all at once; each keeps the replicas it has loaded, keyed by space row.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from lookalike.services.catalog import embeddings as embedding_queries
from lookalike.services.catalog import evaluations as evaluation_queries
from lookalike.services.catalog import jobs as job_queries
from lookalike.services.catalog import spaces as space_queries
from lookalike.services.catalog.documents import ReindexParams
from lookalike.services.catalog.models import Evaluation, Space
from lookalike.services.detection.embedding import SUFFIX as REGIONS_SUFFIX
from lookalike.services.errors import SpaceConflict
from lookalike.services.index.milvus_store import MilvusCollection, collection_name
from lookalike.services.index.replicas import space_directory
from lookalike.services.runtime import Runtime
from lookalike.services.spaces.files import owned_files, release_files
from lookalike.services.spaces.fill import catch_up
from lookalike.services.spaces.lookup import find_space

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvaluationSummary:
    """The figures of a space's newest evaluation that the spaces list shows."""

    benchmark: str
    map: float
    precision_at_1: float | None
    precision_at_10: float | None
    queries: int | None
    gallery: int | None
    evaluated_at: datetime

    @classmethod
    def of(cls, row: Evaluation) -> EvaluationSummary:
        precision = row.figures.get("precision", {})
        return cls(benchmark=row.benchmark, map=row.map, precision_at_1=precision.get("1"),
                   precision_at_10=precision.get("10"), queries=row.figures.get("queries"),
                   gallery=row.figures.get("gallery"), evaluated_at=row.created_at)


@dataclass(frozen=True)
class SpaceSummary:
    """A space's definition, size, default flag and last evaluation (GET /v1/spaces); whether
    ingest keeps it whole (`filled`), and how many embedded catalog images it lacks (`lag`)."""

    name: str
    backbone: str
    weights_sha256: str | None
    layer: str
    pooling: str
    whitening: str | None
    dim: int
    options: dict[str, Any]
    is_default: bool
    vector_count: int
    filled: bool
    lag: int
    last_evaluation: EvaluationSummary | None

    def to_public(self) -> dict[str, Any]:
        data = asdict(self)
        if self.last_evaluation is not None:
            data["last_evaluation"]["evaluated_at"] = self.last_evaluation.evaluated_at.isoformat()
        return data


@dataclass(frozen=True)
class DeletedSpace:
    """What deleting a space removed."""

    name: str
    vectors: int
    index_files: int
    whitening_file: str | None
    trained_files: list[str]
    milvus_collection: str | None = None

    def to_public(self) -> dict[str, Any]:
        return asdict(self)


def _summary(session: Session, space: Space, evaluation: Evaluation | None) -> SpaceSummary:
    return SpaceSummary(
        name=space.name, backbone=space.backbone, weights_sha256=space.weights_sha256,
        layer=space.layer, pooling=space.pooling, whitening=space.whitening, dim=space.dim,
        options=space.options.model_dump(mode="json"), is_default=space.is_default,
        vector_count=space_queries.vector_count(session=session, space_id=space.id),
        filled=space.filled_at is not None,
        lag=embedding_queries.count_missing(session=session, space_id=space.id),
        last_evaluation=EvaluationSummary.of(evaluation) if evaluation is not None else None)


def list_spaces(runtime: Runtime) -> list[SpaceSummary]:
    """Every space, oldest first, with its vector count and newest evaluation."""
    with runtime.read_session() as session:
        spaces = space_queries.list_spaces(session=session)
        newest = evaluation_queries.latest_evaluations(session=session,
                                                       space_ids=[s.id for s in spaces])
        return [_summary(session, space, newest.get(space.id)) for space in spaces]


def set_default(runtime: Runtime, *, name: str, force: bool = False) -> SpaceSummary:
    """Make `name` the default space in one transaction. A filled space is first caught up
    on any image it lacks (one whose ingest was cut off before following it there); a
    space that still lacks embedded catalog images, such as a half-filled one, is refused
    unless `force`: it would answer searches with part of the catalog."""
    with runtime.read_session() as session:
        if find_space(session=session, name=name).options.regions_of is not None:
            raise SpaceConflict(f"space '{name}' holds regions, not images: make its image "
                                "space the default instead")
    if not force:
        _catch_up_if_filled(runtime, name)
    with runtime.session() as session:
        space_queries.lock_spaces(session=session, space_ids=None)
        space = find_space(session=session, name=name)
        current = space_queries.get_default_space(session=session)
        if current is not None and current.id != space.id and not force:
            _check_complete(session, space, current)
        space_queries.set_default_space(session=session, name=space.name)
        session.commit()
        session.refresh(space)
        newest = evaluation_queries.latest_evaluations(session=session, space_ids=[space.id])
        summary = _summary(session, space, newest.get(space.id))
    log.info("default space is now %s", name)
    return summary


def _catch_up_if_filled(runtime: Runtime, name: str) -> None:
    """Embed what a filled space that is not the default lacks; a half-filled one is left
    to its reindex job."""
    with runtime.read_session() as session:
        space = find_space(session=session, name=name)
        filled = space.filled_at is not None and not space.is_default
    if filled:
        caught = catch_up(runtime, space_name=name)
        if caught.added:
            log.info("space %s caught up by %d images before the switch", name, caught.added)


def _check_complete(session: Session, space: Space, current: Space) -> None:
    """Refuse a space that lacks any embedded catalog image (checked under the spaces' lock,
    which ingest's writes also take)."""
    lag = embedding_queries.count_missing(session=session, space_id=space.id)
    if lag:
        have = space_queries.vector_count(session=session, space_id=space.id)
        need = space_queries.vector_count(session=session, space_id=current.id)
        raise SpaceConflict(
            f"space '{space.name}' holds {have} vectors and lacks {lag} embedded catalog "
            f"images (the default space '{current.name}' holds {need}); finish `lookalike "
            f"spaces reindex {space.name}` first, or force the switch (--force, "
            "?force=true) to search a partial index")


def delete_space(runtime: Runtime, *, name: str) -> DeletedSpace:
    """Remove a space that is not the default: its vectors, change log, snapshots and
    evaluations, its index files, and its whitening file and fine-tuned weight and head files
    unless a space names them (weight files given by hand are never touched).

    The index files go before the commit: should the commit fail, the space is still whole,
    since its index is rebuilt from the catalog. The whitening and trained files, which
    cannot be rebuilt, go only after the commit, and only those that no space names then,
    decided under the lock that creating a space holds too (spaces.files)."""
    with runtime.read_session() as session:
        regions = space_queries.get_space(session=session, name=f"{name}{REGIONS_SUFFIX}")
        if regions is not None and regions.options.regions_of is not None:
            _check_deletable(session, find_space(session=session, name=name))
    if regions is not None and regions.options.regions_of is not None:
        delete_space(runtime, name=regions.name)  # its region space goes with it, first
    with runtime.session() as session:
        space_queries.lock_spaces(session=session, space_ids=None)
        space = find_space(session=session, name=name)
        _check_deletable(session, space)
        space_id, directory = space.id, space_directory(runtime.settings.layout.indexes, space)
        vectors = space_queries.vector_count(session=session, space_id=space_id)
        owned = owned_files(space, settings=runtime.settings)
        space_queries.delete_space(session=session, space_id=space_id)
        index_files = _remove_index_files(directory)
        dropped = _drop_collection(runtime, space)
        session.commit()
    runtime.forget(space_id)
    removed = release_files(runtime, owned)
    log.info("space %s deleted: %d vectors, %d index files, Milvus collection %s", name,
             vectors, index_files, dropped)
    whitening = [str(f.path) for f in removed if f.kind == "whitening"]
    return DeletedSpace(name=name, vectors=vectors, index_files=index_files,
                        whitening_file=whitening[0] if whitening else None,
                        trained_files=sorted(str(f.path) for f in removed
                                             if f.kind != "whitening"),
                        milvus_collection=dropped)


def _check_deletable(session: Session, space: Space) -> None:
    """Refuse the default space and a space that a reindex job is still filling."""
    if space.is_default:
        raise SpaceConflict(f"space '{space.name}' is the default; make another space the "
                            "default first (`lookalike spaces set-default OTHER`)")
    for state in ("queued", "running"):
        for job in job_queries.list_jobs(session=session, state=state, limit=1000):
            if isinstance(job.params, ReindexParams) and job.params.space == space.name:
                raise SpaceConflict(f"job {job.id} is filling space '{space.name}'; cancel it "
                                    f"first (`lookalike jobs cancel {job.id}`)")


def _drop_collection(runtime: Runtime, space: Space) -> str | None:
    """Drop a Milvus space's collection (rebuilt from the catalog should the delete fail);
    its name, or None for a FAISS space or a collection already gone."""
    if space.options.backend != "milvus":
        return None
    name = collection_name(runtime.settings, space)
    return name if MilvusCollection(runtime.milvus(), name, space.dim).drop() else None


def _remove_index_files(directory: Path) -> int:
    """Delete a space's snapshot folder (named by its id: only its files); how many."""
    if not directory.is_dir():
        return 0
    count = sum(1 for path in directory.rglob("*") if path.is_file())
    shutil.rmtree(directory)
    return count
