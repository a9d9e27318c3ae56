"""Content-addressed files under LOOKALIKE_HOME: originals and thumbnails, written atomically."""

from __future__ import annotations

import hashlib
from pathlib import Path

from lookalike.retrieval import atomic
from lookalike.retrieval.errors import LookalikeError

EXTENSIONS = {"JPEG": "jpg", "MPO": "jpg", "PNG": "png", "GIF": "gif", "WEBP": "webp",
              "BMP": "bmp", "TIFF": "tif"}


def _sharded(root: Path, sha256: str, suffix: str) -> Path:
    """A two-level fan-out keeps directories small for millions of files."""
    return root / sha256[:2] / sha256[2:4] / f"{sha256}.{suffix}"


def original_path(root: Path, sha256: str, image_format: str) -> Path:
    return _sharded(root, sha256, EXTENSIONS.get(image_format, "bin"))


def thumbnail_path(root: Path, sha256: str) -> Path:
    return _sharded(root, sha256, "jpg")


def write_atomic(path: Path, data: bytes) -> Path:
    """Write bytes crash-safely; an existing file is kept (content-addressed: same bytes)."""
    if not path.exists():
        atomic.write_atomic(path, lambda handle: handle.write(data))
    return path


def write_original(path: Path, data: bytes) -> Path:
    """Store an original without waiting for the disk; `sync_originals` must run before a
    catalog row points at it. A file already there is kept only if it is whole (after a
    crash before the sync, a renamed file can be short)."""
    if not (path.is_file() and path.stat().st_size == len(data)):
        atomic.write_atomic(path, lambda handle: handle.write(data), durable=False)
    return path


def sync_originals(root: Path) -> None:
    """Make every original written so far durable, in one call per batch."""
    root.mkdir(parents=True, exist_ok=True)
    atomic.sync_filesystem(root)


def read_verified(path: Path, sha256: str, *, what: str, space: str,
                  error: type[LookalikeError]) -> bytes:
    """A file a space was built from, once its bytes match the sha256 the space recorded;
    `error` names the file that is missing or changed and what to do."""
    if not path.is_file():
        raise error(f"space '{space}' needs {what} {path}, which is missing; restore it or "
                    "create the space again")
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != sha256:
        raise error(f"{path} does not match the sha256 recorded by space '{space}'; restore "
                    "the file or create the space again")
    return data
