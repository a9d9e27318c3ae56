"""Detector training jobs (`detect-train`): one epoch per batch, resumable from the job's
checkpoint; the last epoch scores the held-out set and publishes the detector file.

A two-stage job (`fcos-namer`, `fcos-mobilenet-namer`) trains its class-agnostic finder for
the first `epochs` batches (its own checkpoint), then its namer for `namer_epochs` on crops of
the true boxes."""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch import nn

from lookalike.retrieval.detection.coco import read_coco
from lookalike.retrieval.detection.namer import TwoStage
from lookalike.retrieval.detection.networks import TRUNK_BACKBONE, TWO_STAGES, DetectorConfig
from lookalike.retrieval.detection.training import (
    EpochLoss,
    EpochSamples,
    Sample,
    TrainSettings,
    detector_step,
    load_samples,
    localizer_step,
    namer_step,
    scene_samples,
    train,
)
from lookalike.retrieval.models.registry import get_backbone, resolve_weights
from lookalike.services.catalog import jobs as job_queries
from lookalike.services.catalog.documents import DetectTrainParams
from lookalike.services.catalog.models import Job
from lookalike.services.detection.request import DetectTrainRequest
from lookalike.services.detection.scenes import scene_glyphs, training_scenes
from lookalike.services.detection.scoring import score_detector
from lookalike.services.detection.store import LOCALIZER, check_name, new_network, save_detector
from lookalike.services.errors import InvalidRequest
from lookalike.services.jobs.finetune import cancel_watch, patch_result
from lookalike.services.runtime import Runtime

log = logging.getLogger(__name__)

KIND = "detect-train"
NAMER_BATCH = 32  # scenes a namer step crops (about a hundred boxes)
NAMER_TRUNK_LR_SCALE = 0.5  # a pretrained namer's trunk learns at half the head's rate


def check_request(request: DetectTrainRequest) -> None:
    """Refuse at submit time a bad name, missing files, COCO files that are not COCO, or a
    held-out set given by half, rather than in the job's first batch."""
    check_name(request.name)
    for path in (request.coco, request.images, request.val_coco, request.val_images):
        if path is not None and not Path(path).exists():
            raise InvalidRequest(f"{path} does not exist; give an existing COCO file and "
                                 "the folder its file names are relative to")
    if (request.val_coco is None) != (request.val_images is None):
        raise InvalidRequest("give both val_coco and val_images, or neither")
    classes = read_coco(Path(request.coco)).classes
    if request.val_coco is not None:
        read_coco(Path(request.val_coco))
    if request.namer_scenes:
        _check_namer_scenes(request, classes)


def _check_namer_scenes(request: DetectTrainRequest, classes: tuple[str, ...]) -> None:
    """Fresh scenes for the namer need a two-stage network and the generator's classes
    (`classes`: the training COCO file's)."""
    if request.architecture not in TWO_STAGES:
        raise InvalidRequest(f"namer_scenes trains a namer; {request.architecture} has none "
                             f"(use one of {', '.join(TWO_STAGES)}, or omit namer_scenes)")
    generated = scene_glyphs("train").classes
    if tuple(classes) != tuple(generated):
        raise InvalidRequest(
            f"namer_scenes draws scenes like `lookalike sample scenes`, whose classes "
            f"({', '.join(generated)}) are not {request.coco}'s ({', '.join(classes)}); "
            "omit namer_scenes to train the namer on the file's boxes")


def create_train_job(runtime: Runtime, request: DetectTrainRequest) -> Job:
    """A queued `detect-train` job of one batch per epoch."""
    check_request(request)
    params = DetectTrainParams(detect_request=request.model_dump(mode="json"),
                               batch_sizes=[1] * request.total_epochs)
    with runtime.session() as session:
        job = job_queries.create_job(session=session, kind=KIND, params=params,
                                     total=request.total_epochs, batches=request.total_epochs)
        session.commit()
    return job


def _request(job: Job) -> DetectTrainRequest:
    assert isinstance(job.params, DetectTrainParams), f"job {job.id} is not a detect-train job"
    return DetectTrainRequest.model_validate(job.params.detect_request)


def run_train_epoch(runtime: Runtime, job: Job, epoch: int) -> None:
    """Train epoch `epoch` from the job's checkpoint, record the losses; publish at the end."""
    request = _request(job)
    coco = read_coco(Path(request.coco))
    config = DetectorConfig(request.architecture, coco.classes, request.size)
    trunk = resolve_weights(get_backbone(TRUNK_BACKBONE), explicit=None,
                            torch_home=runtime.settings.torch_home)
    torch.manual_seed(request.seed)  # the same untrained heads on every epoch's rebuild
    model = new_network(config, trunk)
    samples = _job_samples(request, _version(Path(request.coco)))
    folder = runtime.settings.layout.job(job.id)
    should_stop = cancel_watch(runtime, job.id)
    if isinstance(model, TwoStage):
        history = _train_two_stage(model, samples, request, folder, epoch, should_stop)
    else:
        step = localizer_step if request.architecture == LOCALIZER else detector_step
        # the localizer's trunk learns at a tenth of the heads' rate (at the full rate it
        # drifted from its ImageNet features on a few hundred scenes); detectors' at the full
        settings = TrainSettings(epochs=request.epochs, batch_size=request.batch_size,
                                 lr=request.lr, seed=request.seed,
                                 trunk_lr_scale=0.1 if request.architecture == LOCALIZER else 1.0)
        history = train(model, samples, step, settings=settings,
                        checkpoint=folder / "checkpoint.pt", until_epoch=epoch + 1,
                        should_stop=should_stop)
    patch_result(runtime, job.id, {"history": [
        {"epoch": h.epoch, "loss": round(h.loss, 5), "seconds": round(h.seconds, 2)}
        for h in history], "classes": list(coco.classes), "train_images": len(samples)})
    if epoch + 1 == request.total_epochs:
        _job_samples.cache_clear()
        _publish(runtime, job.id, request, model, config)


def _train_two_stage(model: TwoStage, samples: list[Sample], request: DetectTrainRequest,
                     folder: Path, epoch: int, should_stop: Callable[[], bool]
                     ) -> list[EpochLoss]:
    """Epoch `epoch` of a two-stage job: the finder's (every box one class) while epoch <
    `epochs`, else the namer's, after restoring the finished finder from its checkpoint.
    Returns both stages' epochs so far, the namer's numbered after the finder's."""
    finder_settings = TrainSettings(epochs=request.epochs, batch_size=request.batch_size,
                                    lr=request.lr, seed=request.seed)
    agnostic = [Sample(s.pixels, s.boxes, np.ones_like(s.labels)) for s in samples]
    history = train(model.finder, agnostic, detector_step, settings=finder_settings,
                    checkpoint=folder / "finder.pt", until_epoch=epoch + 1,
                    should_stop=should_stop)
    if epoch < request.epochs:
        return history
    # digits and other chiral glyphs change class when mirrored: the namer sees no flips
    namer_settings = TrainSettings(epochs=request.namer_epochs, batch_size=NAMER_BATCH,
                                   lr=request.lr, seed=request.seed, flip=False,
                                   trunk_lr_scale=NAMER_TRUNK_LR_SCALE)
    named = train(model.namer, _namer_samples(request, samples), namer_step,
                  settings=namer_settings, checkpoint=folder / "namer.pt",
                  until_epoch=epoch - request.epochs + 1, should_stop=should_stop)
    return history + [EpochLoss(h.epoch + request.epochs, h.loss, h.seconds) for h in named]


def _namer_samples(request: DetectTrainRequest,
                   samples: list[Sample]) -> list[Sample] | EpochSamples:
    """The namer's images: the file's, or `namer_scenes` training-split scenes generated
    afresh for each epoch (seeded by the job's seed and the epoch, so a resumed job draws
    the same ones), so the namer never sees the same object twice and stops overfitting."""
    if not request.namer_scenes:
        return [s for s in samples if len(s.labels)]

    def fresh(epoch: int) -> list[Sample]:
        scenes = training_scenes(request.namer_scenes, seed=(request.seed, epoch))
        return [s for s in scene_samples(scenes, size=request.size) if len(s.labels)]
    return fresh


def _version(path: Path) -> tuple[int, int]:
    """The file's modification time and size: a rewritten COCO file is loaded afresh."""
    stat = path.stat()
    return stat.st_mtime_ns, stat.st_size


@lru_cache(maxsize=1)
def _job_samples(request: DetectTrainRequest, coco_version: tuple[int, int]) -> list[Sample]:
    """A job's training images (one per request and COCO file version), decoded once per
    process rather than once per epoch; dropped when the job publishes."""
    return _samples(request, Path(request.coco), Path(request.images))


def _samples(request: DetectTrainRequest, coco: Path, images: Path) -> list[Sample]:
    """The images at the network's side; a localizer keeps each image's first box only."""
    samples = load_samples(read_coco(coco), images, size=request.size)
    if request.architecture == LOCALIZER:
        samples = [Sample(s.pixels, s.boxes[:1], s.labels[:1]) for s in samples if len(s.labels)]
    return samples


def _publish(runtime: Runtime, job_id: int, request: DetectTrainRequest, model: nn.Module,
             config: DetectorConfig) -> None:
    """Score the held-out set (when given), write the detector file, record both."""
    figures: dict[str, float] = {}
    if request.val_coco is not None and request.val_images is not None:
        figures = score_detector(model, config, Path(request.val_coco), Path(request.val_images))
    path = save_detector(runtime.settings.layout, request.name, model, config, figures)
    patch_result(runtime, job_id, {"figures": {"detector": request.name, **figures},
                                   "weights_file": runtime.settings.layout.stored(path)})
    log.info("detect-train job %d published detector %s: %s", job_id, request.name, figures)
