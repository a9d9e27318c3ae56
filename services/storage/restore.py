"""`lookalike restore`: a backup written into an empty home, once every file of it checks
out against its manifest; nothing is written before that."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from lookalike.retrieval import atomic
from lookalike.services.config import Settings
from lookalike.services.errors import BackupError
from lookalike.services.storage.archive import (
    CATALOG,
    BackupManifest,
    copy_hashed,
    damaged_files,
    read_manifest,
    safe_name,
)
from lookalike.services.storage.backup import sqlite_path

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RestoreReport:
    """What a restore wrote: the catalog (when the backup holds one) and how many files."""

    home: Path
    catalog: Path | None
    files: int
    bytes: int


def restore_home(settings: Settings, folder: Path) -> RestoreReport:
    """Check the backup in `folder` and the target, then copy it into the home."""
    manifest = read_manifest(folder)
    catalog = _catalog_target(settings, manifest)
    _check_empty(settings.home, catalog)
    problems = damaged_files(folder, manifest)
    if problems:
        raise BackupError(f"the backup in {folder} is damaged; nothing was restored: "
                          + "; ".join(problems))
    written = 0
    for name, sha256 in sorted(manifest.files.items()):
        target = catalog if name == CATALOG and catalog else settings.home / safe_name(name)
        if copy_hashed(folder / name, target) != sha256:
            raise BackupError(f"{folder / name} changed while it was being restored; remove "
                              f"{settings.home} and restore again")
        written += target.stat().st_size
    atomic.sync_filesystem(settings.home)
    log.info("restored %s into %s: %d files", folder, settings.home, len(manifest.files))
    return RestoreReport(settings.home, catalog, len(manifest.files), written)


def _catalog_target(settings: Settings, manifest: BackupManifest) -> Path | None:
    """Where the backup's SQLite catalog goes; a mismatch of catalog kinds is refused."""
    database = sqlite_path(settings)
    if manifest.catalog == "sqlite" and database is None:
        raise BackupError("the backup holds a SQLite catalog, but LOOKALIKE_DATABASE_URL names "
                          "a PostgreSQL one; unset it to restore into the home")
    if manifest.catalog == "postgresql" and database is not None:
        raise BackupError("the backup holds no catalog (it was in PostgreSQL): restore the "
                          "pg_dump file with pg_restore, set LOOKALIKE_DATABASE_URL to that "
                          "database, then restore the files")
    return database


def _check_empty(home: Path, catalog: Path | None) -> None:
    if home.exists() and (not home.is_dir() or any(home.iterdir())):
        raise BackupError(f"{home} is not empty; restore into a new or empty home "
                          "(LOOKALIKE_HOME)")
    if catalog is not None and catalog.exists():
        raise BackupError(f"a catalog exists at {catalog} already; restore into a new one")
