"""Server paths that an HTTP request may name: only under the configured ingest roots, after
resolving symlinks and `..`. The answer never says whether a path exists."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from lookalike.services.errors import NotAllowed


def check_under_roots(path: Path, roots: Sequence[Path], *, shown: str | None = None) -> None:
    """NotAllowed unless `path`, resolved, lies inside one of `roots` (resolved too)."""
    if not roots:
        raise NotAllowed("server paths are not accepted over HTTP: set LOOKALIKE_INGEST_ROOTS "
                         "to the folders a job may read, or ingest with the CLI")
    resolved = path.resolve()
    if not any(resolved.is_relative_to(root.resolve()) for root in roots):
        raise NotAllowed(f"path {shown or str(path)!r} is outside the ingest roots "
                         "(LOOKALIKE_INGEST_ROOTS); symlinks and '..' are resolved first")
