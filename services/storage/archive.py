"""A backup folder: the home's layout with a manifest naming every file and its sha256.

The manifest is written last, so a folder without one is an unfinished backup. Paths in it
are relative to the folder (and to the home they are restored into); a name that would
leave the folder is refused, so a forged manifest cannot write outside the home."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Literal

from lookalike.retrieval import atomic
from lookalike.services.errors import BackupError
from lookalike.services.storage.files import file_sha256

MANIFEST = "lookalike-backup.json"
FORMAT = 1
CATALOG = "catalog.db"
_CHUNK = 1 << 20


@dataclass
class BackupManifest:
    """What a backup holds: the SQLite catalog (or none: a PostgreSQL catalog is dumped with
    pg_dump) and every file, by path relative to the folder, with its sha256."""

    catalog: Literal["sqlite", "postgresql"]
    files: dict[str, str] = field(default_factory=dict)
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())


def safe_name(name: str) -> PurePosixPath:
    """A manifest's file name, relative and inside the folder; BackupError otherwise."""
    path = PurePosixPath(name)
    if path.is_absolute() or not path.parts or ".." in path.parts or "\\" in name:
        raise BackupError(f"the backup manifest names {name!r}, which is not a path inside "
                          "the backup; the manifest is damaged or forged")
    return path


def write_manifest(folder: Path, manifest: BackupManifest) -> None:
    """Write the manifest durably, as the backup's last file."""
    body = json.dumps({"format": FORMAT, **asdict(manifest)}, indent=1, sort_keys=True)
    atomic.write_atomic(folder / MANIFEST, lambda handle: handle.write(body.encode()))


def read_manifest(folder: Path) -> BackupManifest:
    """The manifest of a backup folder; BackupError when it is missing or unreadable."""
    path = folder / MANIFEST
    if not path.is_file():
        raise BackupError(f"{folder} holds no {MANIFEST}: it is not a backup, or its backup "
                          "did not finish; use another backup")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        manifest = BackupManifest(catalog=raw["catalog"], files=dict(raw["files"]),
                                  created_at=str(raw["created_at"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise BackupError(f"{path} is damaged ({exc}); use another backup") from exc
    if raw.get("format") != FORMAT or manifest.catalog not in ("sqlite", "postgresql"):
        raise BackupError(f"{path} has format {raw.get('format')!r} and catalog "
                          f"{manifest.catalog!r}; this lookalike reads format {FORMAT}")
    for name in manifest.files:
        safe_name(name)
    return manifest


def damaged_files(folder: Path, manifest: BackupManifest) -> list[str]:
    """Each file of the manifest that is missing from the folder or whose bytes changed."""
    problems = []
    for name, sha256 in sorted(manifest.files.items()):
        digest = file_sha256(folder / safe_name(name))
        if digest is None:
            problems.append(f"{name} is missing")
        elif digest != sha256:
            problems.append(f"{name} is damaged (sha256 {digest[:12]}…, the manifest says "
                            f"{sha256[:12]}…)")
    return problems


def copy_hashed(source: Path, target: Path) -> str | None:
    """Copy a file, hashing the bytes on their way; the sha256 of what was copied, or None
    when the source is gone (then nothing is left at `target`)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    try:
        with source.open("rb") as reader, target.open("wb") as writer:
            while chunk := reader.read(_CHUNK):
                digest.update(chunk)
                writer.write(chunk)
    except FileNotFoundError:
        target.unlink(missing_ok=True)
        return None
    return digest.hexdigest()
