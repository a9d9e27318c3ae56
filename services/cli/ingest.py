"""`lookalike ingest`: add files, folders and path lists under a progress bar with rate and ETA."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from lookalike.services.config import get_settings
from lookalike.services.detection.running import detect_images, ingest_detector
from lookalike.services.index.snapshots import snapshot_all
from lookalike.services.ingest.media import ingest_media
from lookalike.services.ingest.pipeline import IngestSummary
from lookalike.services.ingest.sources import IngestItem, collect_items
from lookalike.services.runtime import Runtime
from lookalike.services.search.copycheck import screen_items
from lookalike.services.setup import open_runtime

console = Console()
errors = Console(stderr=True)


class RateColumn(ProgressColumn):
    """Images per second, as rich measures it over the last seconds."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:6.1f} img/s" if speed else "     - img/s")


def rate_progress() -> Progress:
    """A progress bar with count, rate and ETA, on stderr so --json output stays clean."""
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TaskProgressColumn(), RateColumn(), TimeElapsedColumn(),
                    TimeRemainingColumn(), console=errors)


def print_summary(summary: IngestSummary, *, show_failures: int) -> None:
    rate = (summary.added / summary.seconds) if summary.seconds else 0.0
    console.print(f"added {summary.added}, duplicates {summary.duplicates}, "
                  f"failed {summary.failed} in {summary.seconds:.1f} s ({rate:.1f} images/s)")
    if summary.added == 0 and summary.failed == 0 and summary.duplicates:
        console.print("nothing new: every file is already in the catalog")
    failures = [o for o in summary.outcomes if o.status == "failed"]
    if failures:
        table = Table("file", "reason", title="failed files")
        for outcome in failures[:show_failures]:
            table.add_row(outcome.source, outcome.reason or "")
        console.print(table)
        if len(failures) > show_failures:
            console.print(f"… and {len(failures) - show_failures} more (--show-failures N)")


def _screen(runtime: Runtime, items: list[IngestItem], on_copy: str) -> list[IngestItem]:
    """The files left to ingest after the copy check, with the copies found printed."""
    with rate_progress() as progress:
        task = progress.add_task("checking for copies", total=len(items))
        screen = screen_items(runtime, items, on_copy=on_copy,
                              progress=lambda n: progress.advance(task, n))
    verb = "flagged" if on_copy == "flag" else "skipped"
    for path, ids in screen.copies.items():
        console.print(f"{verb}: {path} is a copy of image {', '.join(map(str, ids))}")
    console.print(f"copies {verb}: {len(screen.copies)}")
    return screen.kept


def ingest(
    paths: Annotated[list[Path], typer.Argument(
        help="files, folders, .txt/.lst path lists, .csv lists (path,title,caption,label)")],
    collection: Annotated[str | None, typer.Option(help="stored with each image")] = None,
    label_from_dir: Annotated[bool, typer.Option(help="label images by their folder name")] = False,
    show_failures: Annotated[int, typer.Option(help="how many failed files to list")] = 20,
    on_copy: Annotated[str | None, typer.Option(
        help="ask each file whether it copies a catalogued image (the default space's "
             "calibrated thresholds): flag (report, store) or skip (do not store)")] = None,
    detect: Annotated[str | None, typer.Option(
        help="run this detector (a trained one, or 'faces') on the ingested images and "
             "store and index its boxes as regions (searched with scope=regions); default: "
             "the collection's in LOOKALIKE_DETECT_DEFAULTS")] = None,
) -> None:
    """Add images and videos to the catalog and the index; files already there are reported,
    not re-added. Videos (mp4, mov, avi, mkv, webm) are indexed by their sampled frames."""
    settings = get_settings()
    with open_runtime(settings) as runtime:
        detect = ingest_detector(runtime, collection=collection, asked=detect)
        items = collect_items(paths, collection=collection, label_from_dir=label_from_dir)
        if on_copy is not None:
            items = _screen(runtime, items, on_copy)
        with rate_progress() as progress:
            task = progress.add_task("ingesting", total=len(items))
            summary = ingest_media(runtime, items, progress=lambda n: progress.advance(task, n))
        if detect is not None:
            ids = sorted({o.image_id for o in summary.outcomes
                          if o.status in ("added", "duplicate") and o.image_id is not None})
            regions, vectors, errors = detect_images(runtime, ids, name=detect)
            console.print(f"detector {detect}: {regions} regions stored on {len(ids)} images, "
                          f"{vectors} region vectors indexed")
            for error in errors[:show_failures]:
                console.print(f"  not detected: {error}")
        snapshot_all(runtime)
        print_summary(summary, show_failures=show_failures)


