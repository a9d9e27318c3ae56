"""`lookalike sample ...`: the demo collection built from real images that ship in packages."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import Progress

from lookalike.services.sample import build_sample

console = Console()


def sample_build(
    directory: Annotated[Path, typer.Argument(help="where to write the images")],
    per_class: Annotated[int, typer.Option(help="Fashion-MNIST images per class")] = 300,
) -> None:
    """Write the bundled photos and Fashion-MNIST images (by class folder); reuses what exists."""
    with Progress(console=Console(stderr=True)) as progress:
        task = progress.add_task("sample", total=None)

        def advance(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        summary = build_sample(directory, fashion_per_class=per_class, progress=advance)
    console.print(f"sample collection in {directory}: {summary}")


def sample_hint(
    directory: Annotated[Path, typer.Argument(help="the sample collection")],
    url: Annotated[str, typer.Option(help="where the API listens")] = "http://127.0.0.1:8000",
) -> None:
    """Print example queries to paste once `lookalike serve` runs."""
    photos = sorted((directory / "photos").glob("*.jpg"))
    query = photos[0] if photos else Path("some-photo.jpg")
    console.print(
        "\nThe API is starting; try it in another terminal:\n\n"
        f"  curl -s -F file=@{query} '{url}/v1/search?k=5' | python3 -m json.tool\n"
        f"  lookalike search {query} -k 5\n\n"
        f"OpenAPI docs: {url}/docs\n", highlight=False, soft_wrap=True)


def sample_clips(
    directory: Annotated[Path, typer.Argument(help="where to write the clips")],
    seed: Annotated[int, typer.Option(help="the clips' random seed")] = 0,
    per_class: Annotated[int, typer.Option(help="clips per class and split (on average)")] = 200,
) -> None:
    """Write the video classifiers' tasks as mp4 clips: Fashion-MNIST items moving over
    photos, <task>/<split>/<class>/ for the tasks motion and appearance."""
    from lookalike.services.video.clips import write_sample_clips  # noqa: PLC0415 - av

    written = write_sample_clips(directory, seed=seed, per_class=per_class)
    console.print(f"{written} clips in {directory} (motion and appearance, train and test)")


def sample_frames(
    directory: Annotated[Path, typer.Argument(help="where to write the PNG tiles")],
    clip: Annotated[list[str], typer.Option(help="PATH:STRIDE:GRID[:FRAMES]: every STRIDE-th "
                                                 "frame of the video, cut GRID x GRID (at most "
                                                 "FRAMES frames); repeat for more clips")],
) -> None:
    """Write tiles of spaced video frames as PNG photos (copy-space training data the copies
    benchmark does not use)."""
    from lookalike.services.video.tiles import ClipPlan, write_frame_tiles  # noqa: PLC0415 - PyAV

    written = write_frame_tiles(directory, [ClipPlan.parse(text) for text in clip])
    console.print(f"{written} tiles in {directory}")


def sample_scenes(
    directory: Annotated[Path, typer.Argument(help="where to write images/ and annotations.json")],
    images: Annotated[int, typer.Option(help="how many scenes")] = 200,
    seed: Annotated[int, typer.Option(help="the same seed writes the same scenes")] = 0,
    split: Annotated[str, typer.Option(help="train, or held-out (test glyphs, unseen "
                                            "backgrounds)")] = "train",
    size: Annotated[int, typer.Option(help="scene side in pixels")] = 320,
    max_objects: Annotated[int, typer.Option(help="objects per scene: 1 to this many (1: "
                                                  "scenes for the localization head)")] = 6,
    min_visible: Annotated[float, typer.Option(
        help="share of each object's pixels that later objects must leave in view (0: "
             "only their boxes' IoU is bounded, as scenes were written before)")] = 0.0,
) -> None:
    """Write detection scenes (objects on photo crops) as PNG files and COCO JSON."""
    from lookalike.retrieval.detection.scenes import SceneSpec
    from lookalike.services.detection.scenes import write_scenes

    spec = SceneSpec(size=size, min_object=max(8, size * 24 // 320),
                     max_object=max(8, size // 2), max_objects=max_objects,
                     min_visible=min_visible)
    try:
        summary = write_scenes(directory, images=images, seed=seed, split=split, spec=spec)
    except ValueError as error:
        raise typer.BadParameter(str(error)) from error
    digits = "Fashion-MNIST + OpenCV digits" if summary.digits else \
        "Fashion-MNIST only (OpenCV's digits.png is not installed)"
    console.print(f"{summary.images} scenes, {summary.objects} objects "
                  f"({summary.half_hidden} less than half in view), "
                  f"{len(summary.classes)} classes ({digits}) in {directory}")
