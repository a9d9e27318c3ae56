"""`lookalike visualize filters|top-patches|saliency|augmentations`: what a space's backbone
responds to, and the copy-detection training views, as PNG files."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from lookalike.retrieval.training.copyedits import (
    DEFAULT_PLAN,
    CopyAugmenter,
    augmentation_grid,
    parse_plan,
)
from lookalike.services.config import get_settings
from lookalike.services.jobs import runner as jobs
from lookalike.services.sample import bundled_photos
from lookalike.services.setup import open_runtime
from lookalike.services.spaces import visualize

console = Console()
POLL_S = 0.5
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
    out: Annotated[Path | None, typer.Option(help="also copy the PNG here (it is kept in the "
                                                  "job's folder either way)")] = None,
    space: SpaceOption = None,
    limit: Annotated[int, typer.Option(help="look at the first N catalog images")] = 5000,
) -> None:
    """Find the 9 catalog image patches that excite one channel of one block most (a
    top-patches job over the catalog: on the workers with LOOKALIKE_BROKER_URL, else here),
    wait for it, and print the images' responses and the 3x3 PNG's path."""
    with open_runtime(get_settings()) as runtime:
        job = jobs.submit_top_patches(runtime, space_name=space, layer=layer, channel=channel,
                                      limit=limit, wait=True)
        while job.state in ("queued", "running"):
            time.sleep(POLL_S)
            job = jobs.get_job(runtime, job.id)
        png = runtime.settings.layout.resolve(job.result.patches) if job.result.patches else None
    if job.state != "succeeded" or png is None:
        console.print(f"[red]job {job.id} {job.state}:[/red] {job.error}", highlight=False)
        raise typer.Exit(1)
    for image_id, value in job.result.top or []:
        console.print(f"image {image_id}: {value:.3f}", highlight=False)
    if out is not None:
        shutil.copyfile(png, out)
        png = out
    console.print(f"job {job.id}; top patches: {png}", highlight=False)


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


def visualize_augmentations(
    out: Annotated[Path, typer.Argument(help="PNG file to write")],
    seed: Annotated[int, typer.Option(help="random seed of the views")] = 0,
    views: Annotated[int, typer.Option(help="edited views per photo")] = 7,
    photos: Annotated[int, typer.Option(help="bundled photos shown, one per row")] = 6,
    edit: Annotated[list[str] | None, typer.Option(
        help="a plan step 'name' or 'name:probability:strength' (repeat; default: the copy "
             "training plan)")] = None,
) -> None:
    """Write a grid PNG of copy-detection views of the bundled photos (original first)."""
    plan = parse_plan(edit) if edit else DEFAULT_PLAN
    images = [photo.image for photo in bundled_photos()[:photos]]
    augmentation_grid(images, CopyAugmenter(plan), seed=seed, views=views).save(out)
    console.print(f"augmentations: {out}", highlight=False)
