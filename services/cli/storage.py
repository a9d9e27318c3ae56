"""`lookalike storage verify [--fix]`: the data folder's files against the catalog."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from lookalike.services.config import get_settings
from lookalike.services.setup import open_runtime
from lookalike.services.storage.verify import StorageReport, verify_storage

console = Console(soft_wrap=True, highlight=False)


def storage_verify(
    fix: Annotated[bool, typer.Option("--fix", help="remove orphan files; mark the images "
                                      "whose original is missing or corrupt failed")] = False,
) -> None:
    """Check the data folder's files against the catalog: files no row names (orphans), and
    rows whose file is missing or does not hash to its sha256; exit 1 if any remain.

    --fix removes the orphans and marks pending or embedded images whose original is missing
    or corrupt `failed` with the reason (they leave search results; ingesting the same file
    again restores them). It never deletes a row; a space's missing or changed file is only
    reported (restore it, or create the space again)."""
    with open_runtime(get_settings()) as runtime:
        report = verify_storage(runtime, fix=fix)
    for finding in report.findings:
        console.print(str(finding), markup=False)
    console.print(f"checked {report.images} images, {report.spaces} spaces and "
                  f"{report.files} files: {_counts(report)}", markup=False)
    if fix:
        _print_fixes(report)
    if report.remaining:
        raise typer.Exit(1)


def _counts(report: StorageReport) -> str:
    counts = {kind: sum(f.kind == kind for f in report.findings)
              for kind in ("orphan", "missing", "corrupt")}
    found = [f"{count} {kind}" for kind, count in counts.items() if count]
    return ", ".join(found) if found else "no problems"


def _print_fixes(report: StorageReport) -> None:
    if report.removed:
        console.print(f"removed {len(report.removed)} orphan files")
    if report.marked_failed:
        console.print(f"marked images {', '.join(map(str, report.marked_failed))} failed: "
                      "their originals are missing or corrupt; ingest those files again to "
                      "restore them")
    left = report.remaining
    console.print(f"{len(left)} problems left (see above)" if left else "no problems left")
