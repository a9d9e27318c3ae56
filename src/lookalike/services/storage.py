"""Content-addressed files under LOOKALIKE_HOME: originals and thumbnails, written atomically."""

from __future__ import annotations

from pathlib import Path

from lookalike.retrieval import atomic

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
