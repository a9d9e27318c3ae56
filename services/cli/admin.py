"""`lookalike index|spaces|weights ...`: admin commands over indexes, spaces and weight files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from lookalike.retrieval.models.registry import (
    get_backbone,
    install_weights,
    list_backbones,
    weight_candidates,
)
from lookalike.services.config import get_settings
from lookalike.services.index.snapshots import SnapshotReport, rebuild_all, snapshot_all
from lookalike.services.index.verify import verify_all
from lookalike.services.setup import open_runtime

console = Console()
index_app = typer.Typer(help="Build and snapshot FAISS indexes from the catalog.",
                        no_args_is_help=True)
spaces_app = typer.Typer(help="Embedding spaces.", no_args_is_help=True)
weights_app = typer.Typer(help="Backbone weight files.", no_args_is_help=True)

SpaceOption = Annotated[str | None, typer.Option(help="one space (default: every space)")]


def _print_reports(verb: str, reports: list[SnapshotReport]) -> None:
    for report in reports:
        console.print(f"{verb} {report.space}: {report.vectors} vectors at catalog seq "
                      f"{report.watermark} -> {report.file}")


@index_app.command("rebuild")
def index_rebuild(
    space: SpaceOption = None,
    factory: Annotated[str | None, typer.Option(help="FAISS factory string, e.g. HNSW32")] = None,
) -> None:
    """Recreate indexes from the catalog alone (the source of truth) and snapshot them."""
    runtime = open_runtime(get_settings())
    _print_reports("rebuilt", rebuild_all(runtime, space_name=space, factory=factory))
    runtime.close()


@index_app.command("verify")
def index_verify() -> None:
    """Compare each index with the catalog: missing, extra and stale ids; exit 1 on a mismatch."""
    runtime = open_runtime(get_settings())
    reports = verify_all(runtime)
    runtime.close()
    for report in reports:
        console.print(f"{report.space}: {report.vectors} vectors; {report.advice()}",
                      highlight=False)
    if not all(report.ok for report in reports):
        raise typer.Exit(1)


@index_app.command("snapshot")
def index_snapshot(space: SpaceOption = None) -> None:
    """Write each index, caught up with the catalog, as a new snapshot (atomically)."""
    runtime = open_runtime(get_settings())
    _print_reports("snapshot", snapshot_all(runtime, space_name=space))
    runtime.close()


@weights_app.command("install")
def weights_install(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False)],
    backbone: Annotated[str, typer.Option(help="registry name, e.g. resnet50")],
) -> None:
    """Put a weight file where the registry finds it ($TORCH_HOME/hub/checkpoints)."""
    target = install_weights(file, spec=get_backbone(backbone),
                             torch_home=get_settings().torch_home)
    console.print(f"installed {file} for {backbone} at {target}")


@weights_app.command("list")
def weights_list() -> None:
    """Each backbone and the first place its weights resolve from (or that none do)."""
    table = Table("backbone", "dim", "weights", "found at")
    torch_home = get_settings().torch_home
    for spec in list_backbones():
        found = [p for p in weight_candidates(spec, explicit=None, torch_home=torch_home)
                 if p.is_file()]
        table.add_row(spec.name, str(spec.dim), spec.weights.name,
                      str(found[0]) if found else "[red]missing[/red]")
    console.print(table)
