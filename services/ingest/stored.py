"""An image row's stored files (its original and thumbnail) live exactly as long as a row
that is not deleted names them.

Originals are content-addressed, so a re-upload of deleted bytes reuses the very path that
the delete is about to free. Both sides therefore decide under the image row's lock: a
delete removes the files only if the row is still deleted then (`release_files`), and an
ingest, before committing the rows that name its files, puts back any that a delete or a
storage clean-up removed since it wrote them (`restore_originals`)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

from sqlalchemy.orm import Session

from lookalike.retrieval.images import sha256_hex
from lookalike.services.catalog import images as image_queries
from lookalike.services.catalog.models import Image
from lookalike.services.ingest.prepare import PreparedImage
from lookalike.services.runtime import Runtime
from lookalike.services.storage.files import holds, remove_files, thumbnail_path, write_atomic
from lookalike.services.storage.layout import DataLayout

log = logging.getLogger(__name__)

Reread = Callable[[PreparedImage], bytes]


def image_files(layout: DataLayout, image: Image) -> list[Path]:
    """The files an image row names: its stored original (if any) and its thumbnail."""
    original = [layout.resolve(image.stored_path)] if image.stored_path else []
    return [*original, thumbnail_path(layout.thumbnails, image.sha256)]


def release_files(runtime: Runtime, image_id: int) -> list[Path]:
    """Remove a deleted image's original and thumbnail, unless its bytes were ingested again
    since (the row taken over); the files removed."""
    with runtime.session() as session:
        locked = image_queries.lock_images(session=session, image_ids=[image_id])
        if not locked or locked[0].status != "deleted":
            log.info("image %d was ingested again: its files stay", image_id)
            return []
        removed = remove_files(image_files(runtime.settings.layout, locked[0]))
        session.commit()
    return removed


def read_source(prepared: PreparedImage) -> bytes:
    """The bytes of an image ingested from a local file, read again from that file."""
    return Path(prepared.source).read_bytes()


def restore_originals(prepared: Sequence[PreparedImage], reread: Reread,
                      layout: DataLayout) -> dict[str, str]:
    """Put back each stored original that was removed after it was written, from the bytes it
    was made of; run under the locks of the rows about to name them. Returns sha256 -> why,
    for the originals that cannot be put back (their rows must not be committed as usable)."""
    lost = {}
    for info in prepared:
        if not (info.ok and info.stored_path and info.sha256):
            continue
        path = layout.resolve(info.stored_path)
        if not path.is_file():
            problem = _restore(info, path, reread)
            if problem is not None:
                lost[info.sha256] = problem
    return lost


def _restore(info: PreparedImage, path: Path, reread: Reread) -> str | None:
    """Write one removed original again from its source; why not, when it cannot be."""
    removed = "its stored original was removed while it was being ingested"
    try:
        data = reread(info)
    except OSError as error:
        return f"{removed}, and the source cannot be read again: {error.strerror or error}"
    if sha256_hex(data) != info.sha256:
        return f"{removed}, and the source has changed since; ingest it again"
    write_atomic(path, data)
    log.info("restored %s, removed while it was being ingested", path)
    return None


def repair_original(session: Session, image: Image, read: Callable[[], bytes],
                    layout: DataLayout) -> bool:
    """When the same bytes come in again for a live image, rewrite its stored original if the
    file there does not hold them (gone, zero-filled, cut short); under the row's lock, so a
    delete cannot interleave. `read` gives the bytes, called only when needed. True when
    the file was rewritten; the caller ends the transaction."""
    if image.stored_path is None:
        return False
    path = layout.resolve(image.stored_path)
    if holds(path, image.sha256):
        return False
    locked = image_queries.lock_images(session=session, image_ids=[image.id])
    try:
        data = read()
    except OSError as error:
        log.warning("image %d: its stored original is damaged and its bytes cannot be read "
                    "again: %s", image.id, error)
        return False
    if not locked or locked[0].status == "deleted" or sha256_hex(data) != image.sha256:
        return False
    write_atomic(path, data)
    log.warning("image %d: its stored original did not hold its bytes; written again",
                image.id)
    return True
