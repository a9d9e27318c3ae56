"""The `lookalike` command: set up, ingest, search, serve, and look after indexes and weights."""

from __future__ import annotations

import json
import logging
import sys
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

from lookalike.retrieval.errors import LookalikeError
from lookalike.services.cli.admin import index_app, spaces_app, weights_app
from lookalike.services.cli.bench import bench_app
from lookalike.services.cli.evaluate import evaluate_command
from lookalike.services.cli.finetune import finetune_command
from lookalike.services.cli.index import bench_index_command, index_build
from lookalike.services.cli.jobs import jobs_app, worker
from lookalike.services.cli.sample import sample_app
from lookalike.services.cli.spaces import (
    spaces_create,
    spaces_delete,
    spaces_list,
    spaces_reindex,
    spaces_set_default,
)
from lookalike.services.config import get_settings
from lookalike.services.index.snapshots import snapshot_all
from lookalike.services.ingest.pipeline import IngestSummary, ingest_items
from lookalike.services.ingest.sources import collect_items
from lookalike.services.search.query import search_vector
from lookalike.services.setup import init_catalog, open_runtime

app = typer.Typer(help="lookalike: search a collection of images by example.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
app.add_typer(index_app, name="index")
app.add_typer(spaces_app, name="spaces")
app.add_typer(weights_app, name="weights")
app.add_typer(bench_app, name="bench")
app.add_typer(sample_app, name="sample")
app.command("evaluate")(evaluate_command)
app.command("finetune")(finetune_command)
spaces_app.command("create")(spaces_create)
spaces_app.command("reindex")(spaces_reindex)
spaces_app.command("list")(spaces_list)
spaces_app.command("set-default")(spaces_set_default)
spaces_app.command("delete")(spaces_delete)
index_app.command("build")(index_build)
bench_app.command("index")(bench_index_command)
app.add_typer(jobs_app, name="jobs")
app.command("worker")(worker)
console = Console()
errors = Console(stderr=True)


@app.callback()
def main(verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


@app.command()
def init() -> None:
    """Create the catalog, or migrate it to the newest schema."""
    settings = get_settings()
    revision = init_catalog(settings)
    console.print(f"catalog ready at revision {revision}: {settings.catalog_url}")


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


@app.command()
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="files, folders, .txt/.lst path lists")],
    collection: Annotated[str | None, typer.Option(help="stored with each image")] = None,
    label_from_dir: Annotated[bool, typer.Option(help="label images by their folder name")] = False,
    show_failures: Annotated[int, typer.Option(help="how many failed files to list")] = 20,
) -> None:
    """Add images to the catalog and the index; files already there are reported, not re-added."""
    settings = get_settings()
    runtime = open_runtime(settings)
    items = collect_items(paths, collection=collection, label_from_dir=label_from_dir)
    with rate_progress() as progress:
        task = progress.add_task("ingesting", total=len(items))
        summary = ingest_items(runtime, items, progress=lambda n: progress.advance(task, n))
    snapshot_all(runtime)
    print_summary(summary, show_failures=show_failures)
    runtime.close()


@app.command()
def search(
    image: Annotated[Path | None, typer.Argument(help="query image file")] = None,
    image_id: Annotated[int | None, typer.Option("--id", help="query by catalogued id")] = None,
    k: Annotated[int, typer.Option("-k", help="number of results")] = 10,
    space: Annotated[str | None, typer.Option(help="embedding space (default: default)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the API's JSON answer")] = False,
    qe: Annotated[bool | None, typer.Option("--qe/--no-qe",
                                            help="α-query expansion (default: the space's)")
                  ] = None,
    dba: Annotated[bool | None, typer.Option(
        "--dba/--no-dba", help="database-side augmentation (default: the space's)")] = None,
) -> None:
    """Print the k catalogued images most like IMAGE (or --id N), best first."""
    if (image is None) == (image_id is None):
        raise typer.BadParameter("give either an IMAGE file or --id N")
    runtime = open_runtime(get_settings())
    query = image.read_bytes() if image is not None else None
    result = search_vector(runtime, space_name=space, k=k, query=query, image_id=image_id,
                           qe=qe, dba=dba)
    runtime.close()
    if as_json:
        console.print_json(json.dumps(result.to_public()))
        return
    table = Table("rank", "id", "score", "label", "source",
                  title=f"space {result.space}, {result.took_ms:.1f} ms")
    for rank, hit in enumerate(result.results, start=1):
        table.add_row(str(rank), str(hit.image_id), f"{hit.score:.4f}", hit.label or "",
                      hit.source)
    console.print(table)


@app.command()
def serve(
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8000,
) -> None:
    """Serve the HTTP API (OpenAPI docs at /docs)."""
    import uvicorn  # noqa: PLC0415 - only this command needs the server

    uvicorn.run("lookalike.services.api.app:create_app", factory=True, host=host, port=port,
                log_level="info")


def run() -> None:
    """Entry point: library errors become one clear line and exit status 1."""
    try:
        app()
    except LookalikeError as exc:
        errors.print(f"[red]error:[/red] {exc}", highlight=False)
        sys.exit(1)
