"""`lookalike duplicates`: clusters of near-identical images in a space, exported."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from lookalike.services.config import get_settings
from lookalike.services.index.duplicates import DuplicateReport, find_duplicates
from lookalike.services.index.duplicates import delete_extras as remove_extras
from lookalike.services.jobs import runner as jobs
from lookalike.services.setup import open_runtime

console = Console()
_SHOWN = 20


def _table(report: DuplicateReport) -> Table:
    table = Table("cluster", "size", "keep", "others", "best", "worst",
                  title=f"space {report.space}: {len(report.clusters)} clusters over "
                  f"{report.images} images at >= {report.threshold:.4f} "
                  f"({report.threshold_from}); {report.extras} extra copies")
    for number, cluster in enumerate(report.clusters[:_SHOWN], start=1):
        table.add_row(str(number), str(len(cluster.ids)), str(cluster.ids[0]),
                      " ".join(str(i) for i in cluster.ids[1:]), f"{cluster.best:.4f}",
                      f"{cluster.worst:.4f}")
    return table


def duplicates(
    space: Annotated[str | None, typer.Option(help="space (default: the default space)")] = None,
    threshold: Annotated[float | None, typer.Option(
        help="cosine similarity linking two images (default: the space's calibrated copy "
             "score)")] = None,
    csv_path: Annotated[Path | None, typer.Option("--csv", help="write every clustered "
                                                  "image to this CSV file")] = None,
    json_path: Annotated[Path | None, typer.Option("--json", help="write the clusters to "
                                                   "this JSON file ('-': stdout)")] = None,
    delete_extras: Annotated[bool, typer.Option(
        help="delete all but the first image of every cluster (asks first unless --yes)")
                             ] = False,
    yes: Annotated[bool, typer.Option("--yes", help="do not ask before deleting")] = False,
    job: Annotated[bool, typer.Option("--job", help="run as a job, on the workers with "
                                      "LOOKALIKE_BROKER_URL (else here), for big catalogs; "
                                      "read its clusters with GET /v1/jobs/ID/duplicates or "
                                      "the page's Duplicates tab")] = False,
) -> None:
    """Cluster the space's images that are copies of each other (range search + connected
    components); the first id of each cluster is the one to keep."""
    if job:
        if delete_extras or csv_path is not None or json_path is not None:
            raise typer.BadParameter("--job keeps its clusters with the job: export them "
                                     "with GET /v1/jobs/ID/duplicates?format=csv|json, and "
                                     "resolve them on the page")
        with open_runtime(get_settings()) as runtime:
            submitted = jobs.submit_duplicates(runtime, space_name=space, threshold=threshold,
                                               wait=True)
            shown = jobs.describe(submitted)
        found = shown.get("clusters")
        console.print(f"job {shown['id']} {shown['state']}" + (
            f": {found['clusters']} clusters, {found['extras']} extra copies over "
            f"{found['images']} images" if found else ""), highlight=False)
        if shown["state"] == "failed":
            console.print(f"[red]{shown['error']}[/red]", highlight=False)
            raise typer.Exit(1)
        return
    with open_runtime(get_settings()) as runtime:
        report = find_duplicates(runtime, space_name=space, threshold=threshold)
        if delete_extras and report.extras and (yes or typer.confirm(
                f"delete {report.extras} images, keeping one per cluster?")):
            deleted = remove_extras(runtime, report)
            console.print(f"deleted {len(deleted)} images: {' '.join(map(str, deleted))}")
    if json_path is not None and str(json_path) == "-":
        print(json.dumps(report.to_public()))
        return
    console.print(_table(report))
    if csv_path is not None:
        with csv_path.open("w", newline="", encoding="utf-8") as stream:
            report.write_csv(stream)
        console.print(f"CSV written to {csv_path}")
    if json_path is not None:
        json_path.write_text(json.dumps(report.to_public(), indent=1), encoding="utf-8")
        console.print(f"JSON written to {json_path}")
