"""Ingest: sources -> validated bytes -> catalog rows -> embeddings; the replicas catch up."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from sqlalchemy.orm import Session

from lookalike.retrieval.embedder import EmbeddedBatch, Embedder
from lookalike.retrieval.errors import ImageRejected
from lookalike.retrieval.images import sha256_hex
from lookalike.services.catalog import embeddings as embedding_queries
from lookalike.services.catalog import images as image_queries
from lookalike.services.catalog.models import Image, Space
from lookalike.services.catalog.schemas import ImageCreate
from lookalike.services.prepare import PrepareConfig, PreparedImage, prepare_bytes, prepare_file
from lookalike.services.runtime import Runtime
from lookalike.services.sources import IngestItem
from lookalike.services.spaces import ensure_default_space

log = logging.getLogger(__name__)

Progress = Callable[[int], None]


@dataclass(frozen=True)
class Outcome:
    """What happened to one source: added, duplicate or failed (with the reason)."""

    source: str
    status: str
    image_id: int | None = None
    reason: str | None = None


@dataclass
class IngestSummary:
    added: int = 0
    duplicates: int = 0
    failed: int = 0
    seconds: float = 0.0
    outcomes: list[Outcome] = field(default_factory=list)

    def record(self, outcome: Outcome) -> None:
        self.outcomes.append(outcome)
        if outcome.status == "added":
            self.added += 1
        elif outcome.status == "duplicate":
            self.duplicates += 1
        else:
            self.failed += 1


def prepare_config(runtime: Runtime, embedder: Embedder) -> PrepareConfig:
    settings = runtime.settings
    return PrepareConfig(
        input_size=embedder.input_size, mean=embedder.spec.weights.mean,
        std=embedder.spec.weights.std, max_bytes=settings.max_upload_bytes,
        max_pixels=settings.max_pixels, thumbnail_size=settings.thumbnail_size,
        originals_dir=settings.originals_dir, thumbnails_dir=settings.thumbnails_dir)


def _image_create(prepared: PreparedImage, item: IngestItem | None, *, collection: str | None,
                  label: str | None) -> ImageCreate:
    """The catalog row for a prepared image, `pending` until its embedding lands."""
    return ImageCreate(
        sha256=prepared.sha256, source_uri=prepared.source, stored_path=prepared.stored_path,
        width=prepared.width, height=prepared.height, format=prepared.format,
        byte_size=prepared.byte_size,
        status="pending" if prepared.ok else "failed", error=prepared.error,
        collection=item.collection if item else collection,
        label=item.label if item else label)


def _upsert(session: Session, data: ImageCreate) -> Image:
    """Insert the row, or take over an existing pending/failed/deleted row with the same bytes."""
    image, created = image_queries.add_image(session=session, data=data)
    if not created:
        for name in ("source_uri", "stored_path", "width", "height", "format", "byte_size",
                     "status", "error", "collection", "label"):
            setattr(image, name, getattr(data, name))
        session.flush()
    return image


def record_batch(session: Session, *, space: Space, prepared: Sequence[PreparedImage],
                 vectors: Sequence[np.ndarray | None], items: Sequence[IngestItem | None],
                 collection: str | None = None, label: str | None = None) -> list[Outcome]:
    """Write one batch of prepared images and their vectors; the caller commits once."""
    outcomes: list[Outcome] = []
    embedded_ids: list[int] = []
    blobs: list[bytes] = []
    for info, vector, item in zip(prepared, vectors, items, strict=True):
        if info.sha256 is None:
            outcomes.append(Outcome(info.source, "failed", reason=info.error))
            continue
        image = _upsert(session, _image_create(info, item, collection=collection, label=label))
        if not info.ok or vector is None:
            outcomes.append(Outcome(info.source, "failed", image.id, info.error))
            continue
        embedded_ids.append(image.id)
        blobs.append(np.asarray(vector, dtype="<f4").tobytes())
        outcomes.append(Outcome(info.source, "added", image.id))
    if embedded_ids:
        embedding_queries.add_embeddings(session=session, space_id=space.id,
                                         image_ids=embedded_ids, vectors=blobs)
    return outcomes


def _known(session: Session, items: Sequence[IngestItem], summary: IngestSummary,
           progress: Progress) -> list[int]:
    """Positions of items whose bytes are not embedded yet; the rest are reported duplicates."""
    todo: list[int] = []
    seen: dict[str, str] = {}
    for position, item in enumerate(items):
        try:
            sha = sha256_hex(item.path.read_bytes())
        except OSError:
            todo.append(position)
            continue
        existing = image_queries.get_image_by_sha(session=session, sha256=sha)
        if sha in seen or (existing is not None and existing.status == "embedded"):
            image_id = existing.id if existing is not None else None
            summary.record(Outcome(str(item.path), "duplicate", image_id,
                                   f"same bytes as {seen.get(sha) or existing.source_uri}"))
            progress(1)
            continue
        seen[sha] = str(item.path)
        todo.append(position)
    return todo


def ingest_items(runtime: Runtime, items: Sequence[IngestItem], *,
                 progress: Progress = lambda n: None) -> IngestSummary:
    """Ingest files in batches: each batch's rows and vectors are committed together, so an
    interruption loses at most the batch in flight and a re-run finishes without duplicates."""
    started = time.perf_counter()
    summary = IngestSummary()
    with runtime.session() as session:
        space = ensure_default_space(session=session, settings=runtime.settings)
        session.commit()
        todo = _known(session, items, summary, progress)
    embedder = runtime.embedder(space)
    prepare = functools.partial(prepare_file, config=prepare_config(runtime, embedder))
    jobs = [(position, str(items[position].path)) for position in todo]
    for batch in embedder.embed_stream(jobs, prepare):
        _commit_batch(runtime, space, batch, items, summary)
        progress(len(batch.payloads))
    summary.seconds = time.perf_counter() - started
    return summary


def _commit_batch(runtime: Runtime, space: Space, batch: EmbeddedBatch,
                  items: Sequence[IngestItem], summary: IngestSummary) -> None:
    prepared = [_as_prepared(payload) for payload in batch.payloads]
    batch_items = [items[p.position] if p.position >= 0 else None for p in prepared]
    with runtime.session() as session:
        outcomes = record_batch(session, space=space, prepared=prepared, vectors=batch.vectors,
                                items=batch_items)
        session.commit()
    for outcome in outcomes:
        summary.record(outcome)


def _as_prepared(payload: object) -> PreparedImage:
    """A worker payload; an exception that escaped `prepare` becomes a failed image."""
    if isinstance(payload, PreparedImage):
        return payload
    return PreparedImage(position=-1, source="?", error_kind="internal", error=str(payload))


@dataclass(frozen=True)
class UploadResult:
    image: Image
    created: bool


def ingest_bytes(runtime: Runtime, data: bytes, *, source: str, collection: str | None = None,
                 label: str | None = None) -> UploadResult:
    """Add one uploaded image; it is searchable when this returns. Bad bytes raise
    ImageRejected and leave no row behind."""
    with runtime.session() as session:
        space = ensure_default_space(session=session, settings=runtime.settings)
        session.commit()
        existing = image_queries.get_image_by_sha(session=session, sha256=sha256_hex(data))
        if existing is not None and existing.status == "embedded":
            return UploadResult(existing, created=False)
    embedder = runtime.embedder(space)
    tensor, prepared = prepare_bytes(data, position=-1, source=source,
                                     config=prepare_config(runtime, embedder))
    if tensor is None:
        raise ImageRejected(prepared.error_kind or "decode_failed", prepared.error or "")
    vector = embedder.embed_tensors(torch.unsqueeze(tensor, 0))[0]
    with runtime.session() as session:
        outcome = record_batch(session, space=space, prepared=[prepared], vectors=[vector],
                               items=[None], collection=collection, label=label)[0]
        session.commit()
        image = image_queries.get_image(session=session, image_id=outcome.image_id)
        runtime.replica(space, session=session)
    return UploadResult(image, created=True)
