"""Ingest: sources -> validated bytes -> catalog rows -> embeddings; the replicas catch up."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import torch
from sqlalchemy.orm import Session

from lookalike.retrieval.embedding.embedder import EmbeddedBatch
from lookalike.retrieval.errors import ImageRejected
from lookalike.retrieval.images import sha256_hex
from lookalike.services.catalog import embeddings as embedding_queries
from lookalike.services.catalog import images as image_queries
from lookalike.services.catalog.models import Image, Space
from lookalike.services.catalog.schemas import ImageCreate
from lookalike.services.ingest.captions import NO_WORDS, Words
from lookalike.services.ingest.metadata import check_metadata, metadata_problem
from lookalike.services.ingest.prepare import (
    PreparedImage,
    prepare_bytes,
    prepare_config,
    prepare_file,
)
from lookalike.services.ingest.sources import IngestItem
from lookalike.services.ingest.stored import (
    Reread,
    read_source,
    repair_original,
    restore_originals,
)
from lookalike.services.runtime import Runtime
from lookalike.services.spaces.fill import follow
from lookalike.services.spaces.lookup import ensure_default_space
from lookalike.services.storage.files import sync_originals
from lookalike.services.storage.layout import DataLayout
from lookalike.services.text.topics import give_topics

log = logging.getLogger(__name__)

Progress = Callable[[int], None]


@dataclass(frozen=True)
class Outcome:
    """What happened to one source: added, duplicate or failed (with the reason)."""

    source: str
    status: str
    image_id: int | None = None
    reason: str | None = None
    video_id: int | None = None


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


def _image_create(prepared: PreparedImage, item: IngestItem | None, *, collection: str | None,
                  label: str | None, words: Words) -> ImageCreate:
    """The catalog row for a prepared image, `pending` until its embedding lands. Its words
    are the caller's (upload form) or the item's, else those found with the file (sidecar,
    EXIF)."""
    given = Words(item.title, item.caption) if item else words
    found = given if not given.empty else prepared.words
    return ImageCreate(
        sha256=prepared.sha256, source_uri=prepared.source, stored_path=prepared.stored_path,
        width=prepared.width, height=prepared.height, format=prepared.format,
        byte_size=prepared.byte_size,
        status="pending" if prepared.ok else "failed", error=prepared.error,
        collection=item.collection if item else collection,
        label=item.label if item else label, title=found.title, caption=found.caption)


RESET_FIELDS = ("source_uri", "stored_path", "width", "height", "format", "byte_size",
                "status", "error", "collection", "label", "title", "caption")


def _upsert_rows(session: Session, rows: Sequence[ImageCreate]) -> dict[str, int]:
    """Insert the rows in one statement; an existing pending/failed/deleted row with the same
    bytes is locked and taken over (reset to this ingest's facts). Returns sha256 -> id."""
    unique = {row.sha256: row for row in rows}
    ids = image_queries.add_images(session=session, rows=list(unique.values()))
    existing = [image_id for image_id, created in ids.values() if not created]
    for image in image_queries.lock_images(session=session, image_ids=existing):
        if image.status != "embedded":
            for name in RESET_FIELDS:
                setattr(image, name, getattr(unique[image.sha256], name))
    session.flush()
    return {sha: image_id for sha, (image_id, _) in ids.items()}


def _fail_lost(session: Session, ids: dict[str, int], lost: dict[str, str]) -> None:
    """Mark failed the rows whose stored original vanished and could not be put back."""
    for sha, reason in lost.items():
        image_queries.set_image_status(session=session, image_id=ids[sha], status="failed",
                                       error=reason)


def record_batch(session: Session, *, space: Space, prepared: Sequence[PreparedImage],
                 vectors: Sequence[np.ndarray | None], items: Sequence[IngestItem | None],
                 reread: Reread, layout: DataLayout, collection: str | None = None,
                 label: str | None = None, words: Words = NO_WORDS) -> list[Outcome]:
    """Write one batch of prepared images and their vectors; the caller commits once. Under
    the rows' locks, originals removed since they were written are put back (`reread` gives
    an image's bytes again), so no row is committed naming a missing file."""
    rows = [_image_create(info, item, collection=collection, label=label, words=words)
            for info, item in zip(prepared, items, strict=True) if info.sha256 is not None]
    ids = _upsert_rows(session, rows)
    lost = restore_originals(prepared, reread, layout)
    _fail_lost(session, ids, lost)
    outcomes: list[Outcome] = []
    vectors_by_id: dict[int, bytes] = {}
    for info, vector in zip(prepared, vectors, strict=True):
        image_id = ids.get(info.sha256) if info.sha256 is not None else None
        reason = lost.get(info.sha256 or "", info.error)
        if image_id is None or reason is not None or vector is None:
            outcomes.append(Outcome(info.source, "failed", image_id, reason))
            continue
        vectors_by_id[image_id] = np.asarray(vector, dtype="<f4").tobytes()
        outcomes.append(Outcome(info.source, "added", image_id))
    if vectors_by_id:
        embedding_queries.add_embeddings(session=session, space_id=space.id,
                                         image_ids=list(vectors_by_id),
                                         vectors=list(vectors_by_id.values()))
    return outcomes


SHA_CHUNK = 500


def _hash_files(items: Sequence[IngestItem]) -> list[str | None]:
    """sha256 of each file's bytes; None where the file cannot be read (reported later)."""
    shas: list[str | None] = []
    for item in items:
        try:
            shas.append(sha256_hex(item.path.read_bytes()))
        except OSError:
            shas.append(None)
    return shas


def _storable(items: Sequence[IngestItem], summary: IngestSummary,
              progress: Progress) -> list[int]:
    """Positions of items whose collection and label fit the catalog; each other item is
    reported failed with the reason, before any of its bytes is read or stored."""
    fitting = []
    for position, item in enumerate(items):
        problem = metadata_problem(collection=item.collection, label=item.label)
        if problem is None:
            fitting.append(position)
            continue
        summary.record(Outcome(str(item.path), "failed", None, problem))
        progress(1)
    return fitting


def _known(session: Session, items: Sequence[IngestItem], positions: Sequence[int],
           summary: IngestSummary, progress: Progress, layout: DataLayout) -> list[int]:
    """Those of `positions` whose bytes are not embedded yet; the rest are reported
    duplicates (and a stored original that no longer holds their bytes is written again)."""
    todo: list[int] = []
    first_seen: dict[str, str] = {}
    for start in range(0, len(positions), SHA_CHUNK):
        chunk = positions[start:start + SHA_CHUNK]
        shas = _hash_files([items[p] for p in chunk])
        existing = image_queries.images_by_shas(session=session,
                                                shas=[s for s in shas if s is not None])
        for position, sha in zip(chunk, shas, strict=True):
            item = items[position]
            row = existing.get(sha) if sha is not None else None
            if sha is not None and (sha in first_seen or (row and row.status == "embedded")):
                if row is not None and sha not in first_seen:
                    repair_original(session, row, item.path.read_bytes, layout)
                earlier = first_seen.get(sha) or (row.source_uri if row else "")
                summary.record(Outcome(str(item.path), "duplicate", row.id if row else None,
                                       f"same bytes as {earlier}"))
                progress(1)
                continue
            if sha is not None:
                first_seen[sha] = str(item.path)
            todo.append(position)
    return todo


def ingest_items(runtime: Runtime, items: Sequence[IngestItem], *,
                 progress: Progress = lambda n: None) -> IngestSummary:
    """Ingest files in batches: each batch's rows and vectors are committed together, so an
    interruption loses at most the batch in flight and a re-run finishes without duplicates.
    A writer thread commits batch N while the model embeds batch N+1. The images, new and
    duplicate, are then embedded into the other filled spaces that lack them (spaces/fill)."""
    started = time.perf_counter()
    summary = IngestSummary()
    with runtime.session() as session:
        space = ensure_default_space(session=session, settings=runtime.settings)
        session.commit()
        todo = _known(session, items, _storable(items, summary, progress), summary, progress,
                      runtime.settings.layout)
        session.commit()
    embedder = runtime.embedder(space)
    prepare = functools.partial(prepare_file, config=prepare_config(runtime, embedder))
    jobs = [(position, str(items[position].path)) for position in todo]
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="catalog-writer") as writer:
        in_flight: Future[int] | None = None
        for batch in embedder.embed_stream(jobs, prepare):
            if in_flight is not None:
                progress(in_flight.result())
            in_flight = writer.submit(_commit_batch, runtime, space, batch, items, summary)
        if in_flight is not None:
            progress(in_flight.result())
    follow(runtime, image_ids=_catalogued(summary), written=space.id)
    summary.seconds = time.perf_counter() - started
    return summary


def _catalogued(summary: IngestSummary) -> list[int]:
    """The embedded images an ingest added or found already there."""
    return sorted({o.image_id for o in summary.outcomes
                   if o.status in ("added", "duplicate") and o.image_id is not None})


def _commit_batch(runtime: Runtime, space: Space, batch: EmbeddedBatch,
                  items: Sequence[IngestItem], summary: IngestSummary) -> int:
    """Write one embedded batch in one transaction, once its stored originals are on disk;
    returns how many items it settled."""
    prepared = [_as_prepared(payload) for payload in batch.payloads]
    batch_items = [items[p.position] if p.position >= 0 else None for p in prepared]
    sync_originals(runtime.settings.layout.originals)
    with runtime.session() as session:
        outcomes = record_batch(session, space=space, prepared=prepared, vectors=batch.vectors,
                                items=batch_items, reread=read_source,
                                layout=runtime.settings.layout)
        give_topics(runtime, session, [o.image_id for o in outcomes
                                       if o.status == "added" and o.image_id is not None])
        session.commit()
    for outcome in outcomes:
        summary.record(outcome)
    return len(outcomes)


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
                 label: str | None = None, words: Words = NO_WORDS) -> UploadResult:
    """Add one uploaded image; it is searchable, in every filled space, when this returns.
    Bad bytes raise ImageRejected, and a collection, label, title or caption too long for
    the catalog InvalidRequest, both before any file is stored or row written. `words` (the
    form's title and caption) win over the XMP or EXIF description."""
    check_metadata(collection=collection, label=label, words=words)
    with runtime.session() as session:
        space = ensure_default_space(session=session, settings=runtime.settings)
        session.commit()
        existing = image_queries.get_image_by_sha(session=session, sha256=sha256_hex(data))
        if existing is not None and existing.status == "embedded":
            repair_original(session, existing, lambda: data, runtime.settings.layout)
            session.commit()
    if existing is not None and existing.status == "embedded":
        follow(runtime, image_ids=[existing.id], written=space.id)
        return UploadResult(existing, created=False)
    embedder = runtime.embedder(space)
    tensor, prepared = prepare_bytes(data, position=-1, source=source,
                                     config=prepare_config(runtime, embedder))
    if tensor is None:
        raise ImageRejected(prepared.error_kind or "decode_failed", prepared.error or "")
    vector = embedder.embed_tensors(torch.unsqueeze(tensor, 0))[0]
    sync_originals(runtime.settings.layout.originals)
    with runtime.session() as session:
        outcome = record_batch(session, space=space, prepared=[prepared], vectors=[vector],
                               items=[None], reread=lambda _: data,
                               layout=runtime.settings.layout, collection=collection,
                               label=label, words=words)[0]
        if outcome.image_id is not None:
            give_topics(runtime, session, [outcome.image_id])
        session.commit()
        image = image_queries.get_image(session=session, image_id=outcome.image_id)
    assert image is not None, "the image row was committed above"
    follow(runtime, image_ids=[image.id], written=space.id)
    with runtime.read_session() as session:
        runtime.replica(space, session=session)
    return UploadResult(image, created=True)
