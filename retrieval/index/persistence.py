"""Snapshots of either kind of index: written crash-safely from a `VectorIndex` or a
`LayeredIndex`, and read back as the newest one that passes its checksum."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from lookalike.retrieval.errors import IndexCorrupt
from lookalike.retrieval.index.faiss_index import VectorIndex
from lookalike.retrieval.index.layered import LayeredIndex, mappable
from lookalike.retrieval.index.snapshot import SnapshotManifest, verified_snapshots, write_snapshot

log = logging.getLogger(__name__)


def save_snapshot(
    index: VectorIndex | LayeredIndex, directory: Path, *, watermark: int,
    extra: dict[str, Any] | None = None,
) -> SnapshotManifest:
    """Write `index` to `directory` crash-safely; the manifest records the catalog watermark."""
    with index._lock:  # the manifest's ntotal must describe exactly the bytes written
        return write_snapshot(
            directory,
            index.write_to,
            watermark=watermark,
            factory=index.factory,
            dim=index.dim,
            ntotal=index.ntotal,
            extra=extra,
        )


def load_latest_snapshot(
    directory: Path, *, mapped: bool = True
) -> tuple[VectorIndex | LayeredIndex, SnapshotManifest] | None:
    """The newest snapshot whose file passes its checksum; broken ones are logged and skipped.

    Where the type allows (`mappable`) and `mapped` is set, the file is mapped under a
    LayeredIndex instead of read into memory."""
    for path, manifest in verified_snapshots(directory):
        layered = mapped and mappable(manifest.factory, manifest.dim)
        try:
            index = VectorIndex.read(path, factory=manifest.factory, mapped=layered)
        except IndexCorrupt as exc:
            log.warning("snapshot %s skipped: %s", path, exc)
            continue
        if (index.dim, index.ntotal) != (manifest.dim, manifest.ntotal):
            log.warning(
                "snapshot %s skipped: holds dim %d, %d vectors; manifest says dim %d, %d vectors",
                path, index.dim, index.ntotal, manifest.dim, manifest.ntotal)
            continue
        return (LayeredIndex(index) if layered else index), manifest
    return None
