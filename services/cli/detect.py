"""`lookalike detect ...`: train detectors as jobs, score them on COCO files, run them over
the catalog to store regions, list them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from lookalike.services.cli.jobs import exit_if_failed
from lookalike.services.config import get_settings
from lookalike.services.jobs import runner as jobs
from lookalike.services.setup import open_runtime

console = Console()

Coco = Annotated[Path, typer.Option(help="COCO detection JSON (`lookalike sample scenes`)")]
Images = Annotated[Path | None, typer.Option(
    help="folder the COCO file names are relative to (default: the JSON's folder)")]


def detect_train(
    name: Annotated[str, typer.Option(help="the detector's name (its file, `--detector`)")],
    coco: Coco,
    images: Images = None,
    architecture: Annotated[str, typer.Option(
        help="fcos, fasterrcnn, fcos-namer (a class-agnostic FCOS + a small crop namer), "
             "fcos-mobilenet-namer (the same + the pretrained trunk as namer: slower, names "
             "better), or localizer (one object: class + box)")] = "fcos",
    size: Annotated[int, typer.Option(help="input side in pixels")] = 320,
    epochs: Annotated[int, typer.Option(help="epochs (two-stage: the finder's)")] = 10,
    namer_epochs: Annotated[int, typer.Option(help="two-stage: the namer's epochs")] = 10,
    namer_scenes: Annotated[int, typer.Option(
        help="two-stage: train the namer on this many scenes generated afresh each epoch "
             "(as `sample scenes` draws the training split) instead of the COCO file's "
             "boxes; 0: the file's")] = 0,
    batch_size: Annotated[int, typer.Option()] = 8,
    lr: Annotated[float, typer.Option(help="the heads' rate (warm-up, then cosine)")] = 2e-3,
    seed: Annotated[int, typer.Option()] = 0,
    val_coco: Annotated[Path | None, typer.Option(help="held-out COCO file to score")] = None,
    val_images: Images = None,
) -> None:
    """Train a detector on the ImageNet MobileNetV2 trunk as a job and publish it."""
    from lookalike.services.detection.request import DetectTrainRequest

    folder = images or coco.parent
    val_folder = val_images or (val_coco.parent if val_coco else None)
    request = DetectTrainRequest(
        name=name, coco=str(coco.resolve()), images=str(folder.resolve()),
        architecture=architecture, size=size, epochs=epochs, namer_epochs=namer_epochs,
        namer_scenes=namer_scenes, batch_size=batch_size, lr=lr, seed=seed,
        val_coco=str(val_coco.resolve()) if val_coco else None,
        val_images=str(val_folder.resolve()) if val_folder else None)
    with open_runtime(get_settings()) as runtime:
        job = jobs.describe(jobs.submit_detect_train(runtime, request, wait=True))
    console.print(f"job {job['id']} ({job['kind']}): {job['state']}")
    for epoch in (job.get("training") or {}).get("history", []):
        console.print(f"  epoch {epoch['epoch']}: loss {epoch['loss']:.4f} "
                      f"({epoch['seconds']:.1f} s)")
    console.print(json.dumps((job.get("training") or {}).get("figures", {})))
    if job["error"]:
        console.print(f"[red]error:[/red] {job['error']}", highlight=False)
    exit_if_failed(job)


def detect_evaluate(
    detector: Annotated[str, typer.Option(help="a trained detector's name")],
    coco: Coco,
    images: Images = None,
) -> None:
    """Score a detector on a COCO file: mAP@[.5:.95], mAP@.5 (pycocotools), the same with
    every class merged into one (`agnostic_*`: finding objects apart from naming them),
    AP@.5 per class (`ap_50/NAME`) and time per image; or IoU >= 0.5 share and class
    accuracy for a localizer."""
    import torch

    from lookalike.services.detection.scoring import score_detector
    from lookalike.services.detection.store import load_detector

    settings = get_settings()
    if settings.torch_threads:
        torch.set_num_threads(settings.torch_threads)
    model, config = load_detector(settings.layout, detector)
    figures = score_detector(model, config, coco, images or coco.parent)
    console.print(json.dumps({"detector": detector, "architecture": config.architecture,
                              "size": config.size, **figures}))


def detect_crops(
    coco: Coco,
    val_coco: Annotated[Path, typer.Option(help="held-out COCO file to measure on")],
    images: Images = None,
    val_images: Images = None,
    side: Annotated[int, typer.Option(help="crop side in pixels")] = 96,
) -> None:
    """Name objects from their true boxes alone: ImageNet trunk features of each crop and a
    linear head trained on `coco`'s crops; prints held-out accuracy, per class, and the
    confusion table (rows: true class). A ceiling on labels, with finding taken out."""
    import numpy as np
    import torch

    from lookalike.retrieval.detection.coco import read_coco
    from lookalike.retrieval.detection.crops import (
        box_crops,
        confusion,
        fit_linear_head,
        pooled_features,
    )
    from lookalike.retrieval.detection.networks import TRUNK_BACKBONE, mobilenet_trunk
    from lookalike.retrieval.detection.training import load_samples
    from lookalike.retrieval.models.registry import get_backbone, resolve_weights

    settings = get_settings()
    if settings.torch_threads:
        torch.set_num_threads(settings.torch_threads)
    trunk = mobilenet_trunk(resolve_weights(get_backbone(TRUNK_BACKBONE), explicit=None,
                                            torch_home=settings.torch_home))
    sets = []
    for path, folder in ((coco, images), (val_coco, val_images)):
        document = read_coco(path)
        side_of = document.images[0].width if document.images else side
        crops = box_crops(load_samples(document, folder or path.parent, size=side_of),
                          side=side)
        sets.append((document.classes, crops, pooled_features(trunk, crops)))
    (classes, train_crops, train_features), (_, val_crops, val_features) = sets
    head = fit_linear_head(train_features, train_crops.labels, len(classes))
    table = confusion(head, val_features, val_crops.labels, len(classes))
    per_class = {name: round(float(table[i, i] / max(1, table[i].sum())), 4)
                 for i, name in enumerate(classes)}
    console.print(json.dumps({"train_crops": len(train_crops.labels),
                              "held_out_crops": len(val_crops.labels), "side": side,
                              "accuracy": round(float(np.trace(table) / table.sum()), 4),
                              "per_class": per_class}))
    for name, row in zip(classes, table, strict=True):
        console.print(f"{name:>12} {' '.join(f'{v:4d}' for v in row)}", highlight=False)


def detect_run(
    detector: Annotated[str, typer.Option(help="a trained detector's name")],
    collection: Annotated[str | None, typer.Option(help="only this collection")] = None,
) -> None:
    """Run a detector over the catalog as a job and store its boxes as regions."""
    with open_runtime(get_settings()) as runtime:
        job = jobs.describe(jobs.submit_detect(runtime, detector=detector,
                                               collection=collection, wait=True))
    console.print(f"job {job['id']} ({job['kind']}): {job['state']}, "
                  f"{job['progress']['done']}/{job['progress']['total']} images, "
                  f"{job['counts']['added']} regions")
    for line in job["errors"][:20]:
        console.print(f"  {line}", highlight=False)
    exit_if_failed(job)


def detect_list() -> None:
    """The trained detectors: architecture, classes, side and held-out figures."""
    from lookalike.services.detection.store import detector_figures, list_detectors

    layout = get_settings().layout
    table = Table("name", "figures")
    for name in list_detectors(layout):
        table.add_row(name, json.dumps(detector_figures(layout, name)))
    table.add_row("faces", "pretrained MTCNN (facenet-pytorch), no training")
    console.print(table)
