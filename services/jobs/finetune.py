"""Fine-tuning jobs: the catalog's labels -> a trained head or backbone -> a new space.

A job runs one epoch per batch, so a worker that dies loses at most the epoch in flight:
the next delivery resumes from the checkpoint under LOOKALIKE_HOME/jobs/<id>/. The last
epoch publishes the weights (content-addressed, with their sha256) and creates the space.
"""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from lookalike.retrieval.atomic import write_atomic
from lookalike.retrieval.models.registry import get_backbone
from lookalike.retrieval.training.copyedits import CopyAugmenter, augmentation_grid
from lookalike.retrieval.training.trainer import EpochRecord, TrainConfig, fit
from lookalike.services.catalog import jobs as job_queries
from lookalike.services.catalog import spaces as space_queries
from lookalike.services.catalog.documents import FinetuneParams
from lookalike.services.catalog.models import Job, Space
from lookalike.services.errors import InvalidRequest, SpaceExists
from lookalike.services.runtime import Runtime
from lookalike.services.spaces.files import hold_space_files
from lookalike.services.spaces.lookup import find_space
from lookalike.services.training.curves import draw_curves
from lookalike.services.training.data import (
    LabelledImages,
    LabelledSplit,
    load_labelled,
    load_unlabelled,
)
from lookalike.services.training.request import FinetuneRequest
from lookalike.services.training.trainees import Trainee, build_trainee

log = logging.getLogger(__name__)

CANCEL_POLL_S = 2.0
GRID_IMAGES = 6
GRID_SIDE = 256


def check_request(runtime: Runtime, request: FinetuneRequest) -> None:
    """Refuse at submit time what would only fail later: a taken space name, an unknown base."""
    with runtime.read_session() as session:
        if space_queries.get_space(session=session, name=request.space) is not None:
            raise InvalidRequest(f"space '{request.space}' already exists; pick another name "
                                 "for the fine-tuned space")
        if request.base_space is not None or request.method == "head":
            find_space(session=session, name=request.base_space)
    if request.method in ("backbone", "self-supervised"):
        spec = get_backbone(request.backbone)
        if request.weights == "pretrained" and not spec.weights.pretrained:
            raise InvalidRequest(f"backbone '{spec.name}' has no pretrained weights; train it "
                                 "from scratch (weights 'none') or give a weight file")
        if request.weights not in ("pretrained", "none") and not Path(request.weights).is_file():
            raise InvalidRequest(f"weight file {request.weights} does not exist")


def run_epoch(runtime: Runtime, job: Job, epoch: int) -> None:
    """Train epoch `epoch` of a fine-tuning job (resuming from its checkpoint) and record it;
    the last epoch also publishes the new space. Cancelling stops between steps."""
    assert isinstance(job.params, FinetuneParams), f"job {job.id} is not a fine-tuning job"
    request = FinetuneRequest.model_validate(job.params.request)
    workdir = runtime.settings.layout.job(job.id)
    data = _split(runtime, request, workdir)
    trainee = build_trainee(runtime, request, data)
    if epoch == 0 and job.result.baseline_val_map is None:
        if request.method == "self-supervised":
            patch_result(runtime, job.id, {"augmentations": _write_grid(runtime, job.id, data,
                                                                        request.seed)})
        patch_result(runtime, job.id, {"baseline_val_map": trainee.validate(trainee.model),
                                 "train_images": len(data.train), "val_images": len(data.val),
                                 "classes": data.classes})
    config = _train_config(request, trainee)
    records = fit(trainee.model, trainee.train_set, config=config,
                  checkpoint=workdir / "checkpoint.pt", validate=trainee.validate,
                  until_epoch=epoch + 1, should_stop=cancel_watch(runtime, job.id))
    _record_history(runtime, job.id, records, request)
    if epoch + 1 == request.epochs:
        _publish(runtime, job.id, request, trainee)


def _train_config(request: FinetuneRequest, trainee: Trainee) -> TrainConfig:
    return TrainConfig(epochs=request.epochs, batch_size=request.batch_size, lr=request.lr,
                       weight_decay=request.weight_decay, loss=request.loss,
                       margin=request.margin, seed=request.seed, bf16=trainee.bf16,
                       classes_per_batch=request.classes_per_batch,
                       augment=tuple(request.augment) if request.method == "backbone" else ())


def _split(runtime: Runtime, request: FinetuneRequest, workdir: Path) -> LabelledImages:
    """The job's train/validation split, drawn once and kept in the job folder, so epochs run
    after a restart see the same images even if the catalog has changed since."""
    path = workdir / "split.json"
    if path.is_file():
        saved = json.loads(path.read_text())
        return LabelledImages(saved["classes"], _unpack(saved["train"]), _unpack(saved["val"]))
    load = load_unlabelled if request.method == "self-supervised" else load_labelled
    data = load(runtime, collection=request.collection, limit=request.limit,
                val_fraction=request.val_fraction, seed=request.seed)
    body = json.dumps({"classes": data.classes, "train": _pack(data.train),
                       "val": _pack(data.val)}).encode()
    write_atomic(path, lambda handle: handle.write(body))
    return data


def _write_grid(runtime: Runtime, job_id: int, data: LabelledImages, seed: int) -> str:
    """The grid PNG of copy-edited views of a few training images (what the job trains
    on), in the job folder; its home-relative path."""
    images = [Image.open(path).convert("RGB") for path in data.train.paths[:GRID_IMAGES]]
    for image in images:
        image.thumbnail((GRID_SIDE, GRID_SIDE))
    grid = augmentation_grid(images, CopyAugmenter(), seed=seed)
    path = runtime.settings.layout.job(job_id) / "augmentations.png"
    buffer = io.BytesIO()
    grid.save(buffer, format="PNG")
    write_atomic(path, lambda handle: handle.write(buffer.getbuffer()))
    return runtime.settings.layout.stored(path)


def _pack(split: LabelledSplit) -> dict:
    return {"ids": split.image_ids, "paths": split.paths, "labels": split.labels.tolist()}


def _unpack(saved: dict) -> LabelledSplit:
    return LabelledSplit(saved["ids"], saved["paths"], np.asarray(saved["labels"], dtype=np.int64))


def cancel_watch(runtime: Runtime, job_id: int) -> Callable[[], bool]:
    """A should_stop for the trainer: True once the job is cancelled (polled every 2 s)."""
    state = {"checked": 0.0, "stop": False}

    def should_stop() -> bool:
        now = time.monotonic()
        if not state["stop"] and now - state["checked"] >= CANCEL_POLL_S:
            state["checked"] = now
            with runtime.read_session() as session:
                job = job_queries.get_job(session=session, job_id=job_id)
                state["stop"] = job is None or job.state == "cancelled"
        return bool(state["stop"])

    return should_stop


def patch_result(runtime: Runtime, job_id: int, values: dict) -> None:
    with runtime.session() as session:
        job_queries.update_result(session=session, job_id=job_id, values=values)
        session.commit()


def _record_history(runtime: Runtime, job_id: int, records: list[EpochRecord],
                    request: FinetuneRequest) -> None:
    """Put every epoch so far into the job and redraw its curves, with the mAP before
    training as the baseline."""
    with runtime.read_session() as session:
        job = job_queries.get_job(session=session, job_id=job_id)
        baseline = job.result.baseline_val_map if job else None
    record_history(runtime, job_id, records,
                   title=f"fine-tuning '{request.space}' ({request.method}, "
                         f"{request.loss} loss)", baseline_map=baseline)


def record_history(runtime: Runtime, job_id: int, records: list[EpochRecord], *, title: str,
                   metric: str = "validation mAP", baseline_map: float | None = None) -> None:
    """Put every epoch so far into a training job (loss, validation figure as val_map,
    seconds) and redraw the curves PNG the job points to: every kind of training job's."""
    history = [{"epoch": r.epoch, "loss": round(r.loss, 5), "seconds": round(r.seconds, 2),
                "val_map": None if r.val_map is None else round(r.val_map, 5)}
               for r in records]
    curves = draw_curves(history, runtime.settings.layout.job(job_id) / "curves.png",
                         title=title, baseline_map=baseline_map, metric=metric)
    patch_result(runtime, job_id, {"history": history,
                                   "curves": runtime.settings.layout.stored(curves)})


def _publish(runtime: Runtime, job_id: int, request: FinetuneRequest, trainee: Trainee) -> None:
    """Write the trained weights under LOOKALIKE_HOME, create the space they define, and
    record it in the job. Once only: a rerun of the last epoch (the job died after creating
    the space, or was retried) finds the space this job made and records that one. The
    files and the row are written under the lock on space files (spaces.files), so a space
    deleted meanwhile that shares a weight file cannot remove it before this space names it."""
    space = _own_space(runtime, job_id, request.space)
    if space is None:
        with runtime.session() as session:
            hold_space_files(session)
            data = trainee.publish(runtime.settings, request.space)
            options = data.options.model_copy(update={"trained_by_job": job_id})
            space = space_queries.create_space(session=session,
                                               data=data.model_copy(update={"options": options}))
            session.commit()
        log.info("fine-tuning job %d created space %s", job_id, space.name)
    else:
        log.info("fine-tuning job %d: space %s was created by its earlier run", job_id,
                 space.name)
    head = space.options.head
    patch_result(runtime, job_id, {"space": space.name, "weights_sha256": space.weights_sha256,
                             "weights_file": space.options.weights_file,
                             "head_file": head.file if head else None})


def _own_space(runtime: Runtime, job_id: int, name: str) -> Space | None:
    """The space `name` when this job created it, None when there is none yet; a space of
    that name made otherwise is a conflict the job cannot settle by itself."""
    with runtime.read_session() as session:
        space = space_queries.get_space(session=session, name=name)
    if space is None or space.options.trained_by_job == job_id:
        return space
    other = space.options.trained_by_job
    maker = f"fine-tuning job {other}" if other is not None else "another command"
    raise SpaceExists(
        f"space '{name}' already exists and was created by {maker}, not by fine-tuning job "
        f"{job_id}: the job cannot publish under that name; delete that space (`lookalike "
        f"spaces delete {name}`) and retry the job (`lookalike jobs retry {job_id}`), or "
        "fine-tune again under another name")
