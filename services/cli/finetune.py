"""`lookalike finetune NAME`: train a head or a backbone on the catalog's labels, or a copy
space without labels (self-supervised), as a job; follow it epoch by epoch; end with a space."""

from __future__ import annotations

import json
import time
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from lookalike.retrieval.models.specs import DEFAULT_BACKBONE
from lookalike.services.config import get_settings
from lookalike.services.jobs import runner as jobs
from lookalike.services.runtime import Runtime
from lookalike.services.setup import open_runtime
from lookalike.services.training.request import FinetuneRequest

console = Console()
status = Console(stderr=True)
POLL_S = 1.0


def finetune_command(
    space: Annotated[str, typer.Argument(help="name of the new space the job creates")],
    method: Annotated[str, typer.Option(
        help="head (on cached vectors) | backbone | self-supervised (copy space, no labels)")
                  ] = "head",
    base_space: Annotated[str | None, typer.Option(help="head: whose vectors (default space)")
                          ] = None,
    backbone: Annotated[str, typer.Option(help="backbone: registry name, e.g. lenet5")
                        ] = DEFAULT_BACKBONE,
    weights: Annotated[str, typer.Option(help="backbone: pretrained | none | a weight file")
                       ] = "pretrained",
    frozen_blocks: Annotated[int, typer.Option(help="leading blocks kept frozen")] = 0,
    loss: Annotated[str, typer.Option(
        help="softmax | contrastive | triplet (self-supervised: sscd)")] = "triplet",
    margin: Annotated[float, typer.Option(help="contrastive/triplet margin")] = 0.2,
    pooling: Annotated[str, typer.Option(help="backbone: gem | gap")] = "gem",
    out_dim: Annotated[int | None, typer.Option(help="projection size (head default 128)")
                       ] = None,
    hidden: Annotated[int | None, typer.Option(help="one hidden layer of this width")] = None,
    epochs: Annotated[int, typer.Option()] = 10,
    batch_size: Annotated[int, typer.Option()] = 64,
    classes_per_batch: Annotated[int, typer.Option(help="metric losses: classes per batch")
                                 ] = 8,
    lr: Annotated[float, typer.Option()] = 1e-3,
    augment: Annotated[str, typer.Option(help="comma-separated augmentations")
                       ] = "mirror,random_crop",
    collection: Annotated[str | None, typer.Option(help="learn from this collection only")
                          ] = None,
    limit: Annotated[int | None, typer.Option(help="at most this many labelled images")] = None,
    input_size: Annotated[int | None, typer.Option(
        help="backbone/self-supervised: input size (default: the backbone's)")] = None,
    seed: Annotated[int, typer.Option()] = 0,
    wait: Annotated[bool, typer.Option(help="follow the job until it ends")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="print the job as JSON at the end")
                       ] = False,
) -> None:
    """Fine-tune on the catalog's labels; the job reports loss and validation mAP per epoch,
    checkpoints every epoch (a killed job resumes), and ends with space NAME. Fill it with
    `lookalike spaces reindex NAME`. --method self-supervised needs no labels: every stored
    image is its own class and two copy-edited views of it must match."""
    try:
        request = FinetuneRequest(
            space=space, method=method, base_space=base_space, backbone=backbone,
            weights=weights, frozen_blocks=frozen_blocks, loss=loss, margin=margin,
            pooling=pooling, out_dim=out_dim, hidden=hidden, epochs=epochs,
            batch_size=batch_size, classes_per_batch=classes_per_batch, lr=lr,
            augment=[a for a in augment.split(",") if a], collection=collection, limit=limit,
            input_size=input_size, seed=seed)
    except ValidationError as error:
        raise typer.BadParameter(str(error)) from error
    with open_runtime(get_settings()) as runtime:
        job = jobs.submit_finetune(runtime, request)
        status.print(f"fine-tuning job {job.id} queued")
        if wait:
            follow_epochs(runtime, job.id, epochs)
        final = jobs.describe(jobs.get_job(runtime, job.id))
    if as_json:
        console.print_json(json.dumps(final))
    else:
        _summary(final)


def follow_epochs(runtime: Runtime, job_id: int, epochs: int, *, metric: str = "val mAP"
                  ) -> None:
    """A progress bar over epochs with the last loss and `metric` (the history's val_map),
    until the job ends; Ctrl-C cancels it (it resumes from its last checkpoint with
    `lookalike jobs retry`)."""
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TextColumn("{task.fields[figures]}"))
    with Progress(*columns, console=status) as progress:
        task = progress.add_task("epochs", total=epochs, figures="")
        try:
            while True:
                job = jobs.describe(jobs.get_job(runtime, job_id))
                history = job.get("training", {}).get("history", [])
                figures = (f"loss {history[-1]['loss']:.4f}, {metric} {history[-1]['val_map']}"
                           if history else "")
                progress.update(task, completed=len(history), figures=figures)
                if job["state"] in ("succeeded", "failed", "cancelled"):
                    return
                time.sleep(POLL_S)
        except KeyboardInterrupt:
            jobs.cancel(runtime, job_id)
            status.print(f"cancelled job {job_id}; `lookalike jobs retry {job_id}` resumes it "
                         "from its last finished epoch")
            raise typer.Exit(130) from None


def _summary(job: dict) -> None:
    training = job.get("training", {})
    console.print(f"job {job['id']}: {job['state']}" +
                  (f"; error: {job['error']}" if job["error"] else ""), highlight=False)
    history = training.get("history", [])
    if history:
        console.print(f"validation mAP {training.get('baseline_val_map')} before, "
                      f"{history[-1]['val_map']} after {len(history)} epochs "
                      f"({sum(r['seconds'] for r in history):.0f} s of training); "
                      f"curves: {training.get('curves')}", highlight=False)
    if training.get("augmentations"):
        console.print(f"training views: {training['augmentations']}", highlight=False)
    if training.get("space"):
        console.print(f"created space {training['space']} (weights sha256 "
                      f"{training['weights_sha256']}); next: `lookalike spaces reindex "
                      f"{training['space']}`", highlight=False)
