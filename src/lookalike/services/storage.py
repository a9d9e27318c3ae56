"""Content-addressed files under LOOKALIKE_HOME: originals and thumbnails, written atomically."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

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
    """Write bytes via temp file + fsync + rename; an existing file is kept (same content)."""
    if path.exists():
        return path
    if not path.parent.is_dir():
        path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
