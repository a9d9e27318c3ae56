"""`lookalike visualize filters|top-patches|saliency`: what a space's backbone responds to, as
PNG files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from lookalike.services.config import get_settings
from lookalike.services.setup import open_runtime
from lookalike.services.spaces import visualize

console = Console()
SpaceOption = Annotated[str | None, typer.Option("--space", help="space name (default: the "
                                                                  "default space)")]


def visualize_filters(
    out: Annotated[Path, typer.Argument(help="PNG file to write")],
    space: SpaceOption = None,
) -> None:
    """Write the first-layer filters of a space's backbone as a grid PNG."""
    with open_runtime(get_settings()) as runtime:
        path = visualize.write_filters(runtime, space_name=space, out=out)
    console.print(f"filters: {path}", highlight=False)


def visualize_top_patches(
    layer: Annotated[int, typer.Option(help="trunk block, 0-based (see --help of finetune's "
                                            "--frozen-blocks for the same numbering)")],
    channel: Annotated[int, typer.Option(help="channel of that block's output")],
    out: Annotated[Path, typer.Option(help="PNG file to write")] = Path("top-patches.png"),
    space: SpaceOption = None,
    limit: Annotated[int, typer.Option(help="look at the first N catalog images")] = 5000,
) -> None:
    """Find the 9 catalog image patches that excite one channel of one block most (a pass
    over the catalog) and store them as a 3x3 PNG."""
    with open_runtime(get_settings()) as runtime:
        path, top = visualize.write_top_patches(runtime, space_name=space, layer=layer,
                                                channel=channel, out=out, limit=limit)
    for image_id, value in top:
        console.print(f"image {image_id}: {value:.3f}", highlight=False)
    console.print(f"top patches: {path}", highlight=False)


def visualize_saliency(
    image: Annotated[Path, typer.Argument(exists=True, dir_okay=False)],
    out: Annotated[Path, typer.Option(help="PNG file to write")] = Path("saliency.png"),
    space: SpaceOption = None,
    match: Annotated[int | None, typer.Option(help="catalog image id the score is taken "
                                                   "against (default: IMAGE itself)")] = None,
) -> None:
    """Write the saliency of IMAGE's similarity score (its gradient on the pixels) over it."""
    with open_runtime(get_settings()) as runtime:
        path = visualize.write_saliency(runtime, space_name=space, image=image, out=out,
                                        match_id=match)
    console.print(f"saliency: {path}", highlight=False)
