"""Crash-safe snapshot files: temp file + fsync + rename, a JSON manifest with the sha256 after it.

This module knows files, names and checksums, not FAISS: `index.py` hands it a writer callback
and reads back the files it returns as verified.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import mmap
import os
import re
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from lookalike.retrieval.atomic import write_atomic

log = logging.getLogger(__name__)

MANIFEST_FORMAT = 1
TMP_GRACE_S = 600.0
_CHUNK = 8 << 20
CHECK_CHUNK = 64 << 20
_MANIFEST_RE = re.compile(r"^snapshot-(\d{12,})-(\d+)\.json$")
_INDEX_RE = re.compile(r"^snapshot-(\d{12,})-(\d+)\.faiss$")


class ByteSink(Protocol):
    """Anything bytes can be written to: what a snapshot writer callback receives."""

    def write(self, data: bytes, /) -> int: ...


@dataclass(frozen=True)
class SnapshotManifest:
    """What a snapshot holds and how to check its index file before trusting it."""

    file: str
    sha256: str
    factory: str
    dim: int
    ntotal: int
    watermark: int
    created_at: str
    extra: dict[str, Any] = field(default_factory=dict)
    size: int = 0
    chunk_size: int = 0
    chunk_sha256: list[str] = field(default_factory=list)


class _HashingWriter:
    """A write-only file wrapper that counts and hashes every byte on its way to disk: the
    whole file, and each `CHECK_CHUNK` bytes on their own (checked in parallel on load)."""

    def __init__(self, raw: ByteSink) -> None:
        self._raw = raw
        self._hash = hashlib.sha256()
        self._chunk = hashlib.sha256()
        self._chunk_left = CHECK_CHUNK
        self.chunk_digests: list[str] = []
        self.size = 0

    def write(self, data: bytes) -> int:
        self._hash.update(data)
        view = memoryview(data)
        while len(view):
            part, view = view[:self._chunk_left], view[self._chunk_left:]
            self._chunk.update(part)
            self._chunk_left -= len(part)
            if not self._chunk_left:
                self._close_chunk()
        self.size += len(data)
        return self._raw.write(data)

    def _close_chunk(self) -> None:
        self.chunk_digests.append(self._chunk.hexdigest())
        self._chunk = hashlib.sha256()
        self._chunk_left = CHECK_CHUNK

    def hexdigest(self) -> str:
        return self._hash.hexdigest()

    def chunk_hexdigests(self) -> list[str]:
        """The digest of every chunk, the last (partial) one included."""
        if self._chunk_left != CHECK_CHUNK:
            self._close_chunk()
        return self.chunk_digests


def _write_atomic(directory: Path, name: str, fill: Callable[[ByteSink], object]) -> _HashingWriter:
    """Write `name` atomically, hashing and counting its bytes on the way."""
    sinks: list[_HashingWriter] = []

    def hashed(raw: ByteSink) -> None:
        sinks.append(_HashingWriter(raw))
        fill(sinks[0])

    write_atomic(directory / name, hashed)
    return sinks[0]


def _free_stem(directory: Path, watermark: int) -> tuple[str, int]:
    """A `snapshot-<watermark>-<unix-ms>` stem not used yet in `directory`."""
    millis = time.time_ns() // 1_000_000
    while True:
        stem = f"snapshot-{watermark:012d}-{millis}"
        if not (directory / f"{stem}.faiss").exists() and not (directory / f"{stem}.json").exists():
            return stem, millis
        millis += 1


def write_snapshot(
    directory: Path,
    fill: Callable[[ByteSink], object],
    *,
    watermark: int,
    factory: str,
    dim: int,
    ntotal: int,
    extra: dict[str, Any] | None = None,
) -> SnapshotManifest:
    """Write the index bytes produced by `fill`, then its manifest; both atomically."""
    if watermark < 0:
        raise ValueError(f"watermark must be >= 0; got {watermark}")
    extra = dict(extra or {})
    json.dumps(extra)  # fail before writing anything when extra is not JSON-serialisable
    directory.mkdir(parents=True, exist_ok=True)
    stem, millis = _free_stem(directory, watermark)
    written = _write_atomic(directory, f"{stem}.faiss", fill)
    created = datetime.fromtimestamp(millis / 1000, tz=UTC).isoformat(timespec="milliseconds")
    manifest = SnapshotManifest(
        file=f"{stem}.faiss",
        sha256=written.hexdigest(),
        factory=factory,
        dim=dim,
        ntotal=ntotal,
        watermark=watermark,
        created_at=created,
        extra=extra,
        size=written.size,
        chunk_size=CHECK_CHUNK,
        chunk_sha256=written.chunk_hexdigests(),
    )
    body = json.dumps({"format": MANIFEST_FORMAT, **asdict(manifest)}, indent=2).encode()
    _write_atomic(directory, f"{stem}.json", lambda sink: sink.write(body))
    return manifest


def _parse_manifest(path: Path) -> SnapshotManifest | None:
    """The manifest in `path`, or None (with a warning) when it is unreadable or malformed."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        manifest = SnapshotManifest(
            file=str(raw["file"]),
            sha256=str(raw["sha256"]),
            factory=str(raw["factory"]),
            dim=int(raw["dim"]),
            ntotal=int(raw["ntotal"]),
            watermark=int(raw["watermark"]),
            created_at=str(raw["created_at"]),
            extra=dict(raw.get("extra") or {}),
            size=int(raw["size"]),
            chunk_size=int(raw.get("chunk_size", 0)),
            chunk_sha256=[str(digest) for digest in raw.get("chunk_sha256", [])],
        )
    except (OSError, ValueError, TypeError, KeyError) as exc:
        log.warning("snapshot manifest %s is unreadable, skipped: %s", path, exc)
        return None
    if raw.get("format") != MANIFEST_FORMAT or manifest.file != f"{path.stem}.faiss":
        log.warning(
            "snapshot manifest %s skipped: format %r, file %r; expected format %d, file %s.faiss",
            path,
            raw.get("format"),
            manifest.file,
            MANIFEST_FORMAT,
            path.stem,
        )
        return None
    return manifest


def _manifest_paths(directory: Path) -> list[Path]:
    """Manifest files in `directory`, newest first: highest watermark, then latest time."""
    if not directory.is_dir():
        return []
    found = []
    for path in directory.iterdir():
        match = _MANIFEST_RE.match(path.name)
        if match:
            found.append(((int(match[1]), int(match[2]), path.name), path))
    return [path for _, path in sorted(found, reverse=True)]


def list_snapshots(directory: Path) -> list[SnapshotManifest]:
    """Every readable manifest in `directory`, newest first (files are not checksummed here)."""
    manifests = (_parse_manifest(path) for path in _manifest_paths(directory))
    return [manifest for manifest in manifests if manifest is not None]


def file_problem(directory: Path, manifest: SnapshotManifest) -> str | None:
    """Why the manifest's index file cannot be trusted (missing, size, checksum), or None."""
    path = directory / manifest.file
    try:
        size = path.stat().st_size
        if size != manifest.size:
            return f"size {size} bytes, manifest says {manifest.size}"
        if manifest.chunk_size:
            return _chunk_problem(path, manifest)
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
    except OSError as exc:
        return f"unreadable ({exc.strerror or exc})"
    if digest.hexdigest() != manifest.sha256:
        return f"sha256 {digest.hexdigest()}, manifest says {manifest.sha256}"
    return None


def _chunk_problem(path: Path, manifest: SnapshotManifest) -> str | None:
    """The first chunk whose sha256 differs from the manifest's; chunks are hashed on every
    core at once (hashlib releases the GIL), from the mapped file without copies."""
    step = manifest.chunk_size
    count = -(-manifest.size // step)
    if len(manifest.chunk_sha256) != count:
        return f"manifest lists {len(manifest.chunk_sha256)} chunk digests for {count} chunks"
    if not count:
        return None
    with path.open("rb") as handle, mmap.mmap(handle.fileno(), 0,
                                               access=mmap.ACCESS_READ) as mapped:

        def digest(number: int) -> str:
            with memoryview(mapped)[number * step:(number + 1) * step] as part:
                return hashlib.sha256(part).hexdigest()

        with ThreadPoolExecutor(len(os.sched_getaffinity(0))) as pool:
            digests = list(pool.map(digest, range(count)))
    for number, (got, want) in enumerate(zip(digests, manifest.chunk_sha256, strict=True)):
        if got != want:
            return f"chunk {number} has sha256 {got}, manifest says {want}"
    return None


def verified_snapshots(directory: Path) -> Iterator[tuple[Path, SnapshotManifest]]:
    """Snapshots whose index file matches its manifest, newest first; others are logged."""
    for manifest in list_snapshots(directory):
        problem = file_problem(directory, manifest)
        if problem is None:
            yield directory / manifest.file, manifest
        else:
            log.warning("snapshot %s skipped: %s", directory / manifest.file, problem)


def _is_stale(path: Path, grace_s: float) -> bool:
    """Whether `path` is older than `grace_s` seconds (a writer may still be busy otherwise)."""
    try:
        return time.time() - path.stat().st_mtime > grace_s
    except FileNotFoundError:
        return False


def _unlink(path: Path, removed: list[Path]) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
        removed.append(path)


def prune_snapshots(
    directory: Path, *, keep: int = 2, tmp_grace_s: float = TMP_GRACE_S
) -> list[Path]:
    """Keep the newest `keep` valid snapshots; delete older or broken ones and crash leftovers.

    Temp files and index files without a manifest are deleted only once older than
    `tmp_grace_s`, so a snapshot being written by another process right now survives.
    """
    if keep < 1:
        raise ValueError(f"keep must be >= 1 so that a snapshot survives; got {keep}")
    removed: list[Path] = []
    kept: set[str] = set()  # index files of the snapshots kept
    for manifest_path in _manifest_paths(directory):
        manifest = _parse_manifest(manifest_path)
        if manifest is not None and len(kept) < keep and not file_problem(directory, manifest):
            kept.add(manifest.file)
            continue
        _unlink(manifest_path, removed)
        if manifest is not None:
            _unlink(directory / manifest.file, removed)
    for path in sorted(directory.iterdir()) if directory.is_dir() else []:
        leftover = path.name.startswith(".snapshot-") and path.name.endswith(".tmp")
        orphan = _INDEX_RE.match(path.name) is not None and path.name not in kept
        if (leftover or orphan) and _is_stale(path, tmp_grace_s):
            _unlink(path, removed)
    return removed
