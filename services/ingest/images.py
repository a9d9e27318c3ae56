"""Use cases on single catalogued images: look up, locate files, delete."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from lookalike.retrieval.images import decode_image, make_thumbnail
from lookalike.services.catalog import images as image_queries
from lookalike.services.catalog.models import Image
from lookalike.services.errors import ImageNotFound
from lookalike.services.ingest.stored import release_files
from lookalike.services.runtime import Runtime
from lookalike.services.storage.files import thumbnail_path, write_atomic

log = logging.getLogger(__name__)


def get_live_image(runtime: Runtime, image_id: int) -> Image:
    """A catalogued image that has not been deleted."""
    with runtime.session() as session:
        image = image_queries.get_image(session=session, image_id=image_id)
    if image is None or image.status == "deleted":
        raise ImageNotFound(f"no image with id {image_id}")
    return image


def original_file(runtime: Runtime, image_id: int) -> tuple[Path, str]:
    """The stored original of an image and its format."""
    image = get_live_image(runtime, image_id)
    if not image.stored_path:
        raise ImageNotFound(f"image {image_id} has no stored file (status {image.status})")
    path = runtime.settings.layout.resolve(image.stored_path)
    if not path.is_file():
        raise ImageNotFound(f"image {image_id}: its stored file {image.stored_path} is missing "
                            f"under {runtime.settings.layout.home} (status {image.status}); "
                            "`lookalike storage verify` lists such files")
    return path, image.format or "bin"


def thumbnail_file(runtime: Runtime, image_id: int) -> Path:
    """The image's JPEG thumbnail, made from the stored original on first request, and made
    again when the file there is not a whole JPEG (no sha256 is recorded for thumbnails)."""
    image = get_live_image(runtime, image_id)
    path = thumbnail_path(runtime.settings.layout.thumbnails, image.sha256)
    if _whole_jpeg(path):
        return path
    original, _ = original_file(runtime, image_id)
    settings = runtime.settings
    size = settings.thumbnail_size
    decoded = decode_image(original.read_bytes(), max_bytes=settings.max_upload_bytes,
                           max_pixels=settings.max_pixels, draft=(size, size))
    return write_atomic(path, make_thumbnail(decoded.image, size=size))


def _whole_jpeg(path: Path) -> bool:
    """Whether the file starts and ends with JPEG's markers (SOI, EOI), as the thumbnails we
    write do; a zero-filled or cut-short file does not."""
    try:
        with path.open("rb") as handle:
            head = handle.read(2)
            handle.seek(-2, os.SEEK_END)
            tail = handle.read(2)
    except OSError:
        return False
    return head == b"\xff\xd8" and tail == b"\xff\xd9"


def delete_image(runtime: Runtime, image_id: int) -> None:
    """Delete an image: gone from every space's search at once. Its stored files are removed
    once the deletion is committed, even if refreshing this process's replicas then fails,
    and only if its bytes have not been ingested again meanwhile (stored.release_files)."""
    with runtime.session() as session:
        if not image_queries.mark_image_deleted(session=session, image_id=image_id):
            raise ImageNotFound(f"no image with id {image_id}")
        session.commit()
    try:
        with runtime.read_session() as session:
            for replica in runtime.loaded_replicas():
                replica.refresh(session)
    finally:
        release_files(runtime, image_id)
    log.info("image %d deleted", image_id)
