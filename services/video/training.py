"""Video-classifier training jobs: one epoch per batch, on the fine-tuning jobs' machinery
(the trainer's checkpoint/resume, cancel between steps, history and curves in the job). The
last epoch scores the model on held-out clips and publishes it by sha256, as the default
video classifier unless told otherwise."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import torch

from lookalike.retrieval.training.trainer import TrainConfig, fit
from lookalike.retrieval.video.classifiers import parameter_count
from lookalike.retrieval.video.synthetic import ClipSpec
from lookalike.retrieval.video.training import (
    ClipItems,
    TrainableClassifier,
    accuracy,
    accuracy_validator,
    predict,
)
from lookalike.services.catalog.documents import VideoTrainParams
from lookalike.services.catalog.models import Job
from lookalike.services.errors import InvalidRequest
from lookalike.services.ingest.fence import check_under_roots
from lookalike.services.jobs.finetune import cancel_watch, patch_result, record_history
from lookalike.services.runtime import Runtime
from lookalike.services.video.clips import ClipSet, load_clip_folder
from lookalike.services.video.registry import register
from lookalike.services.video.request import VideoTrainRequest
from lookalike.services.video.store import build, store_classifier

log = logging.getLogger(__name__)


def check_request(request: VideoTrainRequest, *, roots: list[Path] | None = None) -> None:
    """Refuse at submit time a source that is missing (or, over HTTP, outside the ingest
    roots)."""
    source = Path(request.source)
    if roots is not None:
        check_under_roots(source, roots)
    if not source.is_dir():
        raise InvalidRequest(f"clip folder {source} does not exist; give a folder from "
                             "`lookalike sample clips` or one of CLASS/*.mp4")


def split_clips(request: VideoTrainRequest) -> tuple[ClipSet, ClipSet]:
    """(train, held-out): the task's train/test folders of sample clips, or a seeded
    stratified share of a plain CLASS/ folder."""
    source, spec = Path(request.source), _spec(request)
    if (source / request.task / "train").is_dir():
        train = load_clip_folder(source / request.task / "train", spec)
        return train, load_clip_folder(source / request.task / "test", spec, train.classes)
    clips = load_clip_folder(source, spec)
    rng = np.random.default_rng(request.seed)
    held = np.zeros(len(clips.labels), dtype=bool)
    for label in range(len(clips.classes)):
        members = rng.permutation(np.flatnonzero(clips.labels == label))
        held[members[:max(1, round(len(members) * request.val_fraction))]] = True
    return (ClipSet(clips.clips[~held], clips.labels[~held], clips.classes),
            ClipSet(clips.clips[held], clips.labels[held], clips.classes))


def _spec(request: VideoTrainRequest) -> ClipSpec:
    return ClipSpec(frames=request.frames, size=request.size)


def _config(request: VideoTrainRequest) -> TrainConfig:
    """Cross-entropy over the classes on shuffled batches."""
    return TrainConfig(epochs=request.epochs, batch_size=request.batch_size, lr=request.lr,
                       loss="softmax", seed=request.seed)


def run_epoch(runtime: Runtime, job: Job, epoch: int) -> None:
    """Train epoch `epoch` of a video-train job from its checkpoint and record it; the last
    epoch also scores and publishes the classifier. Cancelling stops between steps."""
    assert isinstance(job.params, VideoTrainParams), f"job {job.id} is not a video-train job"
    request = VideoTrainRequest.model_validate(job.params.video_request)
    train, held_out = split_clips(request)
    torch.manual_seed(request.seed)
    model = build(request.model, len(train.classes), runtime.settings)
    if epoch == 0:
        patch_result(runtime, job.id, {"train_images": len(train.labels),
                                       "val_images": len(held_out.labels),
                                       "classes": train.classes})
    records = fit(TrainableClassifier(model), ClipItems(train.clips, train.labels),
                  config=_config(request),
                  checkpoint=runtime.settings.layout.job(job.id) / "checkpoint.pt",
                  validate=accuracy_validator(held_out.clips, held_out.labels),
                  until_epoch=epoch + 1, should_stop=cancel_watch(runtime, job.id))
    record_history(runtime, job.id, records, title=f"video {request.model} '{request.task}'",
                   metric="held-out accuracy")
    if epoch + 1 == request.epochs:
        _publish(runtime, job.id, request, model, train.classes,
                 score(model, held_out, train_seconds=sum(r.seconds for r in records)))


def score(model: torch.nn.Module, held_out: ClipSet, *,
          train_seconds: float) -> dict[str, float | int]:
    """Accuracy on the held-out clips, clips/s at inference, parameters, training time."""
    started = time.perf_counter()
    found = predict(model, held_out.clips)
    seconds = time.perf_counter() - started
    return {"accuracy": round(accuracy(found, held_out.labels), 4),
            "train_seconds": round(train_seconds, 1),
            "clips_per_s": round(len(held_out.labels) / max(seconds, 1e-9), 1),
            "parameters": parameter_count(model), "held_out": len(held_out.labels)}


def _publish(runtime: Runtime, job_id: int, request: VideoTrainRequest, model: torch.nn.Module,
             classes: list[str], figures: dict[str, float | int]) -> None:
    """Write the classifier file (content-addressed, so a rerun of the last epoch writes the
    same name) and record it, the default video classifier unless told otherwise."""
    settings = runtime.settings
    path, sha = store_classifier(model, kind=request.model, classes=classes,
                                 spec=_spec(request), settings=settings)
    stored = settings.layout.stored(path)
    register(settings, request.task, {"sha256": sha, "path": stored, "model": request.model,
                                      "classes": classes, "figures": figures,
                                      "trained_by_job": job_id},
             make_default=request.make_default)
    log.info("video-train job %d published video classifier %s", job_id, request.task)
    patch_result(runtime, job_id, {"video_classifier": request.task, "weights_sha256": sha,
                                   "weights_file": stored, "figures": figures})


def job_params(request: VideoTrainRequest) -> VideoTrainParams:
    return VideoTrainParams(video_request=request.model_dump(mode="json"),
                            batch_sizes=[1] * request.epochs)
