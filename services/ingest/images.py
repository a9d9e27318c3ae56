"""Use cases on single catalogued images: look up, locate files, delete."""

from __future__ import annotations

import logging
from pathlib import Path

from lookalike.retrieval.images import decode_image, make_thumbnail
from lookalike.services.catalog import images as image_queries
from lookalike.services.catalog.models import Image
from lookalike.services.errors import ImageNotFound
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
    if not image.stored_path or not Path(image.stored_path).is_file():
        raise ImageNotFound(f"image {image_id} has no stored file (status {image.status})")
    return Path(image.stored_path), image.format or "bin"


def thumbnail_file(runtime: Runtime, image_id: int) -> Path:
    """The image's JPEG thumbnail, made from the stored original on first request."""
    image = get_live_image(runtime, image_id)
    path = thumbnail_path(runtime.settings.layout.thumbnails, image.sha256)
    if path.is_file():
        return path
    original, _ = original_file(runtime, image_id)
    settings = runtime.settings
    size = settings.thumbnail_size
    decoded = decode_image(original.read_bytes(), max_bytes=settings.max_upload_bytes,
                           max_pixels=settings.max_pixels, draft=(size, size))
    return write_atomic(path, make_thumbnail(decoded.image, size=size))


def delete_image(runtime: Runtime, image_id: int) -> None:
    """Delete an image: gone from every space's search at once, its stored files removed."""
    with runtime.session() as session:
        image = image_queries.get_image(session=session, image_id=image_id)
        if image is None or image.status == "deleted":
            raise ImageNotFound(f"no image with id {image_id}")
        files = [Path(image.stored_path)] if image.stored_path else []
        files.append(thumbnail_path(runtime.settings.layout.thumbnails, image.sha256))
        image_queries.mark_image_deleted(session=session, image_id=image_id)
        session.commit()
        for replica in runtime.loaded_replicas():
            replica.refresh(session)
    for path in files:
        path.unlink(missing_ok=True)
    log.info("image %d deleted", image_id)
