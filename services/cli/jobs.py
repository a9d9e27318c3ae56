"""`lookalike jobs ...` and `lookalike worker`: submit, follow, cancel and retry jobs; run them."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from lookalike.services.config import get_settings
from lookalike.services.ingest.sources import UrlItem, read_url_list
from lookalike.services.jobs import runner as jobs
from lookalike.services.setup import open_runtime

console = Console()

JobId = Annotated[int, typer.Argument(help="job id (see `lookalike jobs list`)")]
AsJson = Annotated[bool, typer.Option("--json", help="print the API's JSON answer")]


def _show(job: dict, as_json: bool) -> None:
    if as_json:
        console.print_json(json.dumps(job))
        return
    progress, counts = job["progress"], job["counts"]
    rate = progress["rate_per_s"]
    console.print(f"job {job['id']} ({job['kind']}): {job['state']}, {progress['done']}/"
                  f"{progress['total']} items" + (f" at {rate:.1f}/s" if rate else "") +
                  f"; added {counts['added']}, duplicates {counts['duplicates']}, "
                  f"failed {counts['failed']}" + (
                      f", regions {counts['regions']}" if counts["regions"] else "") +
                  f"; attempts {job['attempts']}")
    if job["error"]:
        console.print(f"[red]error:[/red] {job['error']}", highlight=False)
    for line in job["errors"][:20]:
        console.print(f"  {line}", highlight=False)


def exit_if_failed(job: dict) -> None:
    """Exit with status 1 when a job the command waited for failed, so scripts see it."""
    if job["state"] == "failed":
        raise typer.Exit(1)


def jobs_ingest(
    paths: Annotated[list[Path] | None,
                     typer.Argument(help="files, folders, .txt/.lst/.csv lists")] = None,
    url: Annotated[list[str] | None, typer.Option(help="image URL (repeatable)")] = None,
    url_list: Annotated[Path | None, typer.Option(
        help="URLs one a line, or a .csv with url,title,caption,label columns")] = None,
    collection: Annotated[str | None, typer.Option()] = None,
    label_from_dir: Annotated[bool, typer.Option()] = False,
    detect: Annotated[str | None, typer.Option(
        help="run this detector on the ingested images (default: the collection's)")] = None,
    as_json: AsJson = False,
) -> None:
    """Submit an ingest job: on the workers with LOOKALIKE_BROKER_URL, else run it here."""
    urls: list[str | UrlItem] = [*(url or []), *(read_url_list(url_list) if url_list else [])]
    with open_runtime(get_settings()) as runtime:
        job = jobs.submit_ingest(runtime, paths=[str(p.resolve()) for p in paths or []] or None,
                                 urls=urls or None, collection=collection,
                                 label_from_dir=label_from_dir, wait=True, detect=detect)
        shown = jobs.describe(job)
    _show(shown, as_json)
    exit_if_failed(shown)


def jobs_list(state: Annotated[str | None, typer.Option()] = None,
              limit: Annotated[int, typer.Option()] = 50) -> None:
    """The newest jobs first."""
    with open_runtime(get_settings()) as runtime:
        table = Table("id", "kind", "state", "done", "total", "added", "dup", "failed", "created")
        for job in map(jobs.describe, jobs.list_jobs(runtime, state=state, limit=limit)):
            counts = job["counts"]
            table.add_row(str(job["id"]), job["kind"], job["state"], str(job["progress"]["done"]),
                          str(job["progress"]["total"]), str(counts["added"]),
                          str(counts["duplicates"]), str(counts["failed"]), job["created_at"] or "")
    console.print(table)


def jobs_show(job_id: JobId, as_json: AsJson = False) -> None:
    """State, progress, counts and errors of one job."""
    with open_runtime(get_settings()) as runtime:
        _show(jobs.describe(jobs.get_job(runtime, job_id)), as_json)


def jobs_cancel(job_id: JobId) -> None:
    """Cancel a queued or running job (batches already running finish)."""
    with open_runtime(get_settings()) as runtime:
        _show(jobs.describe(jobs.cancel(runtime, job_id)), False)


def jobs_retry(job_id: JobId) -> None:
    """Run a failed or cancelled job's unfinished batches again."""
    with open_runtime(get_settings()) as runtime:
        shown = jobs.describe(jobs.retry(runtime, job_id, wait=True))
    _show(shown, False)
    exit_if_failed(shown)


def worker(concurrency: Annotated[int, typer.Option(help="batches run at once")] = 1) -> None:
    """Run jobs from LOOKALIKE_BROKER_URL (Celery over Redis) until stopped."""
    if not get_settings().broker_url:
        raise typer.BadParameter("LOOKALIKE_BROKER_URL is not set: without a broker, jobs run "
                                 "inside `lookalike serve` and need no worker")
    command = [sys.executable, "-m", "lookalike.services.workers", f"--concurrency={concurrency}"]
    os.execv(sys.executable, command)
