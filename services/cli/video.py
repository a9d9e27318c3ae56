"""`lookalike video compare`: the 3-D convolution against frame averaging, as one table;
`lookalike video train`: one video classifier as a job, the one ingest applies."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from lookalike.services.cli.finetune import follow_epochs
from lookalike.services.config import get_settings
from lookalike.services.jobs import runner as jobs
from lookalike.services.setup import open_runtime
from lookalike.services.video.compare import compare
from lookalike.services.video.request import VideoTrainRequest

console = Console()
status = Console(stderr=True)


def video_compare(
    directory: Annotated[Path, typer.Argument(help="clips from `lookalike sample clips`")],
    epochs: Annotated[int, typer.Option(help="training epochs of each model")] = 10,
    seed: Annotated[int, typer.Option(help="weights and shuffling seed")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON list on stdout")] = False,
) -> None:
    """Train both video classifiers on the motion and appearance tasks; print held-out
    accuracy, direction accuracy within direction pairs, size, training time and speed."""
    rows = compare(get_settings(), directory, epochs=epochs, seed=seed)
    if as_json:
        print(json.dumps([row.__dict__ for row in rows]))
        return
    table = Table("task", "model", "accuracy", "direction (pairs)", "parameters",
                  "train clips", "train s", "clips/s")
    for row in rows:
        direction = "" if row.direction is None else f"{row.direction:.3f}"
        table.add_row(row.task, row.model, f"{row.accuracy:.3f}", direction,
                      f"{row.parameters:,}", str(row.trained), f"{row.train_s:.1f}",
                      f"{row.clips_per_s:.0f}")
    console.print(table)


def video_train(
    directory: Annotated[Path, typer.Argument(help="clips from `lookalike sample clips`, or a "
                                              "folder of CLASS/*.mp4")],
    task: Annotated[str, typer.Option(help="classifier name; with sample clips, the task "
                                      "folder (motion, appearance)")],
    model: Annotated[str, typer.Option(help="conv3d (C3D-style 3-D CNN) or frames (frame "
                                       "averaging over MobileNetV2)")] = "conv3d",
    epochs: Annotated[int, typer.Option()] = 8,
    batch_size: Annotated[int, typer.Option()] = 32,
    lr: Annotated[float, typer.Option()] = 3e-3,
    seed: Annotated[int, typer.Option()] = 0,
    default: Annotated[bool, typer.Option(help="make it the classifier ingest applies")] = True,
) -> None:
    """Train a video classifier (3-D CNN or frame averaging) as a job; it labels the videos
    ingested next.

    The job reports loss and held-out accuracy per epoch, checkpoints every epoch (a killed
    job resumes with `lookalike jobs retry`), and ends with video classifier TASK."""
    try:
        request = VideoTrainRequest(source=str(directory.resolve()), task=task, model=model,
                                    epochs=epochs, batch_size=batch_size, lr=lr, seed=seed,
                                    make_default=default)
    except ValidationError as error:
        raise typer.BadParameter(str(error)) from error
    with open_runtime(get_settings()) as runtime:
        job = jobs.submit_video_train(runtime, request)
        status.print(f"video-train job {job.id} queued")
        follow_epochs(runtime, job.id, epochs, metric="held-out accuracy")
        final = jobs.describe(jobs.get_job(runtime, job.id))
    if final["state"] != "succeeded":
        status.print(f"job {job.id} {final['state']}: {final['error']}")
        raise typer.Exit(1)
    console.print_json(json.dumps({"video_classifier": task,
                                   **final["training"]["figures"]}))
