"""`lookalike spaces create|reindex`: spaces with descriptor options, filled from the catalog."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from lookalike.retrieval.pooling import POOLING_METHODS
from lookalike.services.config import get_settings
from lookalike.services.setup import open_runtime
from lookalike.services.snapshots import snapshot_all
from lookalike.services.space_admin import SpaceDefinition, create_space, reindex_space

console = Console()


def spaces_create(
    name: Annotated[str, typer.Argument(help="the new space's name")],
    backbone: Annotated[str, typer.Option(help="registry name, e.g. mobilenet_v2")
                        ] = "mobilenet_v2",
    weights: Annotated[Path | None, typer.Option(
        help="a weight file (e.g. fine-tuned); default: the registry's resolution order")] = None,
    pooling: Annotated[str, typer.Option(help=f"one of: {', '.join(POOLING_METHODS)}")] = "gap",
    gem_p: Annotated[float, typer.Option(help="GeM exponent")] = 3.0,
    multiscale: Annotated[bool, typer.Option(help="sum descriptors at scales 1, 1/√2, 1/2")
                          ] = False,
    whiten: Annotated[int | None, typer.Option(help="learn PCA whitening to this dimension")
                      ] = None,
    whiten_from: Annotated[Path | None, typer.Option(
        help="learn the whitening from this folder's images (default: the catalog)")] = None,
    whiten_images: Annotated[int, typer.Option(help="at most this many images to learn from")
                             ] = 3000,
    whiten_shrinkage: Annotated[float, typer.Option(
        help="1 = full whitening, 0.5 = square-root, 0 = PCA rotation only")] = 1.0,
    qe: Annotated[bool, typer.Option(help="α-query expansion on by default")] = False,
    qe_n: Annotated[int, typer.Option(help="αQE neighbours")] = 5,
    qe_alpha: Annotated[float, typer.Option(help="αQE/DBA weight exponent")] = 3.0,
    dba: Annotated[int, typer.Option(help="DBA neighbours used by `evaluate` (0 = off)")] = 0,
    index_factory: Annotated[str, typer.Option(help="FAISS factory string")] = "Flat",
    default: Annotated[bool, typer.Option(help="make it the default space")] = False,
) -> None:
    """Add an embedding space; fill it with `lookalike spaces reindex NAME`."""
    definition = SpaceDefinition(
        backbone=backbone, weights=weights, pooling=pooling, gem_p=gem_p, multiscale=multiscale,
        whiten_dim=whiten, whiten_from=whiten_from, whiten_images=whiten_images,
        whiten_shrinkage=whiten_shrinkage, qe=qe, qe_n=qe_n, qe_alpha=qe_alpha, dba_n=dba,
        index_factory=index_factory)
    runtime = open_runtime(get_settings())
    space = create_space(runtime, name=name, definition=definition, make_default=default)
    runtime.close()
    console.print(f"created space {space.name}: {space.backbone}, {space.pooling}, "
                  f"dim {space.dim}, whitening {space.whitening or 'none'}, "
                  f"scales {space.options['scales']}; now run `lookalike spaces reindex {name}`")


def spaces_reindex(name: Annotated[str, typer.Argument(help="the space to fill")]) -> None:
    """Embed every catalogued image into the space (resumable: done images are skipped)."""
    runtime = open_runtime(get_settings())
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), TimeRemainingColumn(), console=Console(stderr=True)
                  ) as progress:
        task = progress.add_task(f"reindexing {name}", total=None)
        summary = reindex_space(
            runtime, name=name,
            progress=lambda done, total: progress.update(task, completed=done, total=total))
    snapshot_all(runtime, space_name=name)
    runtime.close()
    console.print(f"space {name}: embedded {summary.embedded}, already there "
                  f"{summary.skipped}, failed {len(summary.failed)}")
    for line in summary.failed[:20]:
        console.print(f"  failed {line}")
