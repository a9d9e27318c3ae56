"""Content-addressed files under LOOKALIKE_HOME: originals and thumbnails, written atomically,
and trusted only when their bytes hash to what they must hold."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from pathlib import Path

from lookalike.retrieval import atomic
from lookalike.retrieval.errors import LookalikeError
from lookalike.retrieval.images import FORMATS

log = logging.getLogger(__name__)

_CHUNK = 1 << 20


def _extension(image_format: str) -> str:
    """The suffix (no dot) a stored original of the format is named with; "bin" if unknown."""
    kind = FORMATS.get(image_format)
    return kind.suffixes[0].lstrip(".") if kind else "bin"


def _sharded(root: Path, sha256: str, suffix: str) -> Path:
    """A two-level fan-out keeps directories small for millions of files."""
    return root / sha256[:2] / sha256[2:4] / f"{sha256}.{suffix}"


def original_path(root: Path, sha256: str, image_format: str) -> Path:
    return _sharded(root, sha256, _extension(image_format))


def thumbnail_path(root: Path, sha256: str) -> Path:
    return _sharded(root, sha256, "jpg")


def file_sha256(path: Path) -> str | None:
    """The sha256 (hex) of a file's bytes, read in chunks; None when there is no such file."""
    digest = hashlib.sha256()
    try:
        with path.open("rb") as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
    except (FileNotFoundError, IsADirectoryError):
        return None
    return digest.hexdigest()


def holds(path: Path, sha256: str) -> bool:
    """Whether `path` is a file whose bytes hash to `sha256`: a missing, short or zero-filled
    file at a content-addressed path is not the file it is named after."""
    return file_sha256(path) == sha256


def write_atomic(path: Path, data: bytes, *, durable: bool = True) -> Path:
    """Write bytes crash-safely, unless the file there already holds exactly these bytes
    (checked by sha256, so a damaged file of the right name and size is written again)."""
    if not (path.is_file() and holds(path, hashlib.sha256(data).hexdigest())):
        atomic.write_atomic(path, lambda handle: handle.write(data), durable=durable)
    return path


def write_original(path: Path, data: bytes) -> Path:
    """Store an original without waiting for the disk; `sync_originals` must run before a
    catalog row points at it. A file already there is kept only if it holds these bytes
    (after a crash before the sync, a renamed file can be short or zero-filled)."""
    return write_atomic(path, data, durable=False)


def sync_originals(root: Path) -> None:
    """Make every original written so far durable, in one call per batch."""
    root.mkdir(parents=True, exist_ok=True)
    atomic.sync_filesystem(root)


def remove_files(paths: Iterable[Path]) -> list[Path]:
    """Remove these files, each on its own: one that cannot be removed is logged and left
    (`lookalike storage verify --fix` finds it later), the others still go. The removed."""
    removed = []
    for path in paths:
        try:
            path.unlink()
        except FileNotFoundError:
            continue
        except OSError as error:
            log.warning("could not remove %s: %s", path, error)
            continue
        removed.append(path)
    return removed


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
