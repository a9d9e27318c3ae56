"""`lookalike backup DIR` and `lookalike restore DIR`: a home copied while it serves, and
written back into an empty home."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from lookalike.services.config import get_settings
from lookalike.services.storage.backup import backup_home
from lookalike.services.storage.restore import restore_home

console = Console(soft_wrap=True, highlight=False)

Folder = Annotated[Path, typer.Argument(help="the backup folder")]


def backup(folder: Folder) -> None:
    """Copy the home while the service runs: the SQLite catalog (online backup), originals,
    weights, whitening and newest valid index snapshots, with a manifest of sha256 sums.

    FOLDER must be new or empty. A PostgreSQL catalog is not copied: dump it with pg_dump
    first (README); this then copies the files and snapshots only. Files that changed or
    vanished while they were copied are listed, and the command exits 1."""
    report = backup_home(get_settings(), folder)
    if report.catalog == "postgresql":
        console.print("the catalog is in PostgreSQL: this backup holds the files and index "
                      "snapshots only; dump the catalog with pg_dump (see the README)")
    for note in report.left_out:
        console.print(f"left out: {note}", markup=False)
    console.print(f"backed up {report.originals} originals, {report.space_files} space files "
                  f"and {report.snapshots} index snapshots ({report.bytes} bytes) into "
                  f"{report.folder}", markup=False)
    if report.left_out:
        raise typer.Exit(1)


def restore(folder: Folder) -> None:
    """Restore a backup into an empty home (LOOKALIKE_HOME), once every file in FOLDER
    matches its manifest; nothing is written before that check passes."""
    report = restore_home(get_settings(), folder)
    catalog = f"the catalog to {report.catalog} and " if report.catalog else ""
    console.print(f"restored {catalog}{report.files} files ({report.bytes} bytes) into "
                  f"{report.home}; check it with `lookalike index verify` and "
                  "`lookalike storage verify`", markup=False)
