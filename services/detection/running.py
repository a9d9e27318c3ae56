"""Detect jobs (`detect`): run a trained detector over the catalog, a page of image ids per
batch, and store its boxes as regions; and detection on one uploaded image.

A batch replaces that detector's regions on each image of its page, so a redelivered or
retried batch writes the same rows again instead of adding them twice."""

from __future__ import annotations

import logging
from functools import lru_cache
from pathlib import Path

from PIL import Image
from torch import nn

from lookalike.retrieval.detection.boxes import Box
from lookalike.retrieval.detection.faces import FACE_THRESHOLD, FACES, Finder, face_finder
from lookalike.retrieval.detection.finding import find_boxes
from lookalike.retrieval.detection.networks import DetectorConfig
from lookalike.retrieval.errors import ImageRejected
from lookalike.retrieval.images import decode_image
from lookalike.services.catalog import images as image_queries
from lookalike.services.catalog import jobs as job_queries
from lookalike.services.catalog.documents import DetectRunParams
from lookalike.services.catalog.models import Image as ImageRow
from lookalike.services.catalog.models import Job
from lookalike.services.catalog.regions import replace_regions
from lookalike.services.catalog.schemas import RegionCreate
from lookalike.services.detection.embedding import embed_regions
from lookalike.services.detection.store import detector_path, load_detector
from lookalike.services.errors import InvalidRequest
from lookalike.services.runtime import Runtime
from lookalike.services.storage.layout import DataLayout

log = logging.getLogger(__name__)

KIND = "detect"


@lru_cache(maxsize=4)
def _cached(home: Path, name: str, mtime: float) -> tuple[nn.Module, DetectorConfig]:
    """A detector loaded once per file version (a retrained file has a new mtime)."""
    return load_detector(DataLayout(home), name)


def detector(runtime: Runtime, name: str) -> tuple[nn.Module, DetectorConfig]:
    """The trained detector `name`, loaded once per process and file version."""
    layout = runtime.settings.layout
    path = detector_path(layout, name)
    if not path.is_file():
        return load_detector(layout, name)  # raises DetectorNotFound with the hint
    return _cached(layout.home, name, path.stat().st_mtime)


@lru_cache(maxsize=2)
def _faces(threshold: float) -> Finder:
    return face_finder(threshold)


def finder(runtime: Runtime, name: str, *, threshold: float | None = None) -> Finder:
    """What finds `name`'s boxes on images: the pretrained `faces`, or a trained detector."""
    if name == FACES:
        return _faces(FACE_THRESHOLD if threshold is None else threshold)
    model, config = detector(runtime, name)

    def find(images: list[Image.Image]) -> list[list[Box]]:
        return find_boxes(model, config, images, threshold=threshold)

    return find


def ingest_detector(runtime: Runtime, *, collection: str | None,
                    asked: str | None) -> str | None:
    """The detector an ingest runs: the one asked for, else its collection's default
    (LOOKALIKE_DETECT_DEFAULTS), else none; an unknown one is refused before anything is
    stored."""
    name = asked
    if name is None and collection is not None:
        name = runtime.settings.detect_defaults.get(collection)
    if name is not None:
        finder(runtime, name)
    return name


def detect_bytes(runtime: Runtime, data: bytes, *, name: str,
                 threshold: float | None = None) -> tuple[int, int, list[Box]]:
    """(width, height, boxes in its pixels) of one uploaded image; nothing is stored."""
    find = finder(runtime, name, threshold=threshold)
    settings = runtime.settings
    decoded = decode_image(data, max_bytes=settings.max_upload_bytes,
                           max_pixels=settings.max_pixels)
    return decoded.width, decoded.height, find([decoded.image])[0]


def create_detect_job(runtime: Runtime, *, name: str, collection: str | None = None) -> Job:
    """A queued job over the embedded images (of `collection`), in pages of job_batch_size."""
    finder(runtime, name)  # an unknown detector is refused now, not when the job runs
    size = runtime.settings.job_batch_size
    with runtime.session() as session:
        ids = image_queries.ids_with_status(session=session, status="embedded")
        if collection is not None:
            rows = image_queries.images_by_ids(session=session, ids=ids)
            ids = [i for i in ids if rows[i].collection == collection]
        pages = [ids[start:start + size] for start in range(0, len(ids), size)]
        params = DetectRunParams(detector=name, collection=collection, batch_size=size,
                                 pages=[(p[0], p[-1]) for p in pages],
                                 batch_sizes=[len(p) for p in pages])
        job = job_queries.create_job(session=session, kind=KIND, params=params,
                                     total=len(ids), batches=len(pages))
        session.commit()
    return job


def run_detect_batch(runtime: Runtime, job: Job, batch: int) -> None:
    """Detect on one page of images, replace that detector's regions on each and embed
    them into the region spaces (services/detection/embedding)."""
    params = job.params
    assert isinstance(params, DetectRunParams), f"job {job.id} is not a detect job"
    first, last = params.pages[batch]
    find = finder(runtime, params.detector)
    with runtime.read_session() as session:
        ids = image_queries.ids_with_status(session=session, status="embedded", first=first,
                                            last=last)
        found = image_queries.images_by_ids(session=session, ids=ids)
        rows = [found[i] for i in ids if i in found]
    rows = [r for r in rows if params.collection is None or r.collection == params.collection]
    added, errors = 0, []
    for row in rows:
        try:
            added += _detect_row(runtime, row, find, params.detector)
        except (OSError, ValueError, ImageRejected, InvalidRequest) as error:
            errors.append(f"image {row.id}: {error}")  # one bad file fails only itself
    embedded = embed_regions(runtime, image_ids=[row.id for row in rows])
    log.info("job %d batch %d: %d regions stored, %d region vectors written", job.id, batch,
             added, embedded)
    with runtime.session() as session:
        job_queries.record_batch(session=session, job_id=job.id, batch=batch,
                                 counts={"added": added, "failed": len(errors)}, errors=errors,
                                 size=params.batch_sizes[batch])
        session.commit()


def detect_images(runtime: Runtime, image_ids: list[int], *, name: str,
                  threshold: float | None = None) -> tuple[int, int, list[str]]:
    """Detect with `name` on these catalogued images now (ingest --detect), replace that
    detector's regions on each and embed them; (regions stored, vectors written, errors)."""
    find = finder(runtime, name, threshold=threshold)
    with runtime.read_session() as session:
        found = image_queries.images_by_ids(session=session, ids=image_ids)
        rows = [found[i] for i in image_ids if i in found and found[i].status == "embedded"]
    added, errors = 0, []
    for row in rows:
        try:
            added += _detect_row(runtime, row, find, name)
        except (OSError, ValueError, ImageRejected, InvalidRequest) as error:
            errors.append(f"image {row.id}: {error}")
    return added, embed_regions(runtime, image_ids=[row.id for row in rows]), errors


def _detect_row(runtime: Runtime, row: ImageRow, find: Finder, name: str) -> int:
    """Detect on one catalogued image's original and store its boxes; returns their count."""
    if not row.stored_path:
        raise ValueError("no stored original to detect on")
    data = runtime.settings.layout.resolve(row.stored_path).read_bytes()
    decoded = decode_image(data, max_bytes=runtime.settings.max_upload_bytes,
                           max_pixels=runtime.settings.max_pixels)  # upright, as catalogued
    boxes = find([decoded.image])[0]
    regions = [RegionCreate(x0=b.x0, y0=b.y0, x1=b.x1, y1=b.y1, label=b.label, score=b.score,
                            detector=name) for b in boxes]
    with runtime.session() as session:
        replace_regions(session=session, image_id=row.id, detector=name, regions=regions)
        session.commit()
    return len(regions)
