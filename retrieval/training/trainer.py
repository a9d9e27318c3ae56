"""The training loop: seeded batches, optional augmentation, a checkpoint after every epoch.

A run is a function of its starting weights, its data and its `TrainConfig`: batch order
comes from (seed, epoch) and each item's augmentation from (seed, epoch, index), so a run
resumed from the checkpoint of epoch k gives the same weights as one that never stopped.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn
from torch.utils.data import Dataset, Sampler

from lookalike.retrieval.errors import (
    CheckpointMismatch,
    InvalidTrainingConfig,
    TrainingStopped,
)
from lookalike.retrieval.training.checkpoint import load_checkpoint, save_checkpoint
from lookalike.retrieval.training.copyedits import CopyAugmenter
from lookalike.retrieval.training.losses import (
    LOSSES,
    contrastive_loss,
    softmax_loss,
    triplet_loss,
)
from lookalike.retrieval.training.sampling import ClassBalancedBatches, ShuffledBatches
from lookalike.retrieval.training.selfsupervised import sscd_loss
from lookalike.retrieval.training.transforms import (
    check_transform_names,
    item_seed,
    training_transform,
)
from lookalike.retrieval.training.twoviews import two_views

logger = logging.getLogger(__name__)

CHECKPOINT_FORMAT = 1
SELF_SUPERVISED = "sscd"  # each image its own class: two copy views of it must match


@dataclass(frozen=True)
class TrainConfig:
    """What a training run does. `margin` is the contrastive or triplet margin (contrastive
    usually wants ~0.7); metric losses use batches of `classes_per_batch` classes with
    batch_size // classes_per_batch images each; softmax and 'sscd' (self-supervised: two
    copy-edited views per image, InfoNCE + KoLeo) use plain shuffled batches."""

    epochs: int
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-4
    loss: str = "triplet"
    margin: float = 0.2
    seed: int = 0
    bf16: bool = False
    classes_per_batch: int = 8
    augment: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.loss not in (*LOSSES, SELF_SUPERVISED):
            raise InvalidTrainingConfig(f"unknown loss '{self.loss}'; available: "
                                        f"{', '.join((*LOSSES, SELF_SUPERVISED))}")
        if (self.epochs < 1 or self.batch_size < 2 or self.lr <= 0 or self.weight_decay < 0
                or self.seed < 0):
            raise InvalidTrainingConfig(
                f"need epochs >= 1, batch_size >= 2, lr > 0, weight_decay >= 0, seed >= 0; got "
                f"{self.epochs}, {self.batch_size}, {self.lr}, {self.weight_decay}, {self.seed}"
            )
        if self.loss not in ("softmax", SELF_SUPERVISED) and self.per_class < 2:
            raise InvalidTrainingConfig(
                f"the {self.loss} loss needs >= 2 images per class in a batch: batch_size "
                f"{self.batch_size} // classes_per_batch {self.classes_per_batch} = "
                f"{self.per_class}; raise batch_size or lower classes_per_batch"
            )
        object.__setattr__(self, "augment", check_transform_names(self.augment))

    @property
    def per_class(self) -> int:
        """Images of each class in a metric-learning batch."""
        return self.batch_size // max(1, self.classes_per_batch)


@dataclass(frozen=True)
class EpochRecord:
    """One finished epoch: its mean training loss, validation mAP (if any) and duration."""

    epoch: int
    loss: float
    val_map: float | None
    seconds: float


@dataclass
class _Run:
    """The mutable parts of a run: optimizer, schedule, batches, history."""

    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    batches: ClassBalancedBatches | ShuffledBatches
    history: list[EpochRecord]


def _labels_of(train_set: Dataset[tuple[Tensor, int]], labels: Sequence[int] | None) -> list[int]:
    """The training labels: given, the dataset's `labels`, or read item by item."""
    if labels is None:
        labels = getattr(train_set, "labels", None)
    if labels is None:
        labels = [int(train_set[i][1]) for i in range(len(train_set))]  # type: ignore[arg-type]
    return [int(label) for label in labels]


def _batches(config: TrainConfig, labels: list[int]) -> ClassBalancedBatches | ShuffledBatches:
    """Class-balanced batches for metric losses, shuffled ones for softmax and sscd."""
    if config.loss in ("softmax", SELF_SUPERVISED):
        return ShuffledBatches(len(labels), batch_size=config.batch_size, seed=config.seed)
    return ClassBalancedBatches(labels, classes_per_batch=config.classes_per_batch,
                                per_class=config.per_class, seed=config.seed)


def _optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """AdamW on the trainable parameters; biases, norms and GeM's p are not decayed."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    if not trainable:
        raise InvalidTrainingConfig("the model has no trainable parameter (all frozen)")
    groups = [
        {"params": [p for p in trainable if p.dim() > 1], "weight_decay": config.weight_decay},
        {"params": [p for p in trainable if p.dim() <= 1], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=config.lr)


def _new_run(model: nn.Module, config: TrainConfig, labels: list[int]) -> _Run:
    """Optimizer, a per-step cosine schedule over all epochs, and the batch sampler."""
    batches = _batches(config, labels)
    optimizer = _optimizer(model, config)
    steps = config.epochs * len(batches)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
    return _Run(optimizer, scheduler, batches, [])


def _config_state(config: TrainConfig) -> dict[str, Any]:
    """The config as plain data for the checkpoint (tuples become lists)."""
    return {key: list(value) if isinstance(value, tuple) else value
            for key, value in dataclasses.asdict(config).items()}


def _resume(path: Path, model: nn.Module, config: TrainConfig, run: _Run) -> None:
    """Load model, optimizer, schedule and history from `path`; refuse another run's file."""
    state = load_checkpoint(path)
    saved = state.get("config")
    if state.get("format") != CHECKPOINT_FORMAT or saved != _config_state(config):
        changed = sorted(key for key, value in _config_state(config).items()
                         if not isinstance(saved, dict) or saved.get(key) != value)
        raise CheckpointMismatch(
            f"checkpoint {path} was written by a run with other settings ({', '.join(changed)}"
            " differ); use the same settings to resume, or delete it to start again"
        )
    try:
        model.load_state_dict(state["model"], strict=True)
        run.optimizer.load_state_dict(state["optimizer"])
    except (RuntimeError, ValueError, KeyError) as error:
        raise CheckpointMismatch(
            f"checkpoint {path} does not fit this model: {str(error).splitlines()[0]}; "
            "delete it to start again"
        ) from error
    run.scheduler.load_state_dict(state["scheduler"])
    run.history = [EpochRecord(**record) for record in state["history"]]


def _save(path: Path, model: nn.Module, config: TrainConfig, run: _Run) -> None:
    """Checkpoint after a finished epoch (atomic: a crash keeps the previous one)."""
    save_checkpoint(path, {
        "format": CHECKPOINT_FORMAT,
        "epoch": len(run.history),
        "config": _config_state(config),
        "model": model.state_dict(),
        "optimizer": run.optimizer.state_dict(),
        "scheduler": run.scheduler.state_dict(),
        "history": [dataclasses.asdict(record) for record in run.history],
    })


def _augmented(pixels: Tensor, augment: Callable[[Image.Image, int], Tensor], seed: int) -> Tensor:
    """One (3,S,S) uint8 item through the seeded augmentation, back at its own size."""
    if pixels.dim() != 3 or pixels.shape[0] != 3 or pixels.dtype != torch.uint8:
        raise InvalidTrainingConfig(
            f"augmentation needs (3,S,S) uint8 image items, got {tuple(pixels.shape)} "
            f"{pixels.dtype}; train without --augment on vectors"
        )
    return augment(Image.fromarray(pixels.permute(1, 2, 0).numpy()), seed)


def _load_batch(train_set: Dataset[tuple[Tensor, int]], indices: list[int], config: TrainConfig,
                epoch: int) -> tuple[Tensor, Tensor]:
    """Stacked inputs and int64 labels of `indices`, augmented with (seed, epoch, index);
    for sscd, both copy views of each item (first views, then second) labelled by index."""
    items = [train_set[index] for index in indices]
    inputs = [item[0] for item in items]
    if config.loss == SELF_SUPERVISED:
        first, second = two_views(inputs, indices, augmenter=CopyAugmenter(), seed=config.seed,
                                  epoch=epoch)
        return torch.cat([first, second]), torch.tensor(indices * 2, dtype=torch.int64)
    if config.augment:
        augment = training_transform(config.augment, size=inputs[0].shape[-1])
        inputs = [_augmented(pixels, augment, item_seed(config.seed, epoch, index))
                  for pixels, index in zip(inputs, indices, strict=True)]
    labels = torch.tensor([int(item[1]) for item in items], dtype=torch.int64)
    return torch.stack(inputs), labels


def _loss(model: nn.Module, inputs: Tensor, labels: Tensor, config: TrainConfig) -> Tensor:
    """The configured loss of one batch (forward pass under bf16 autocast when asked)."""
    autocast = (torch.autocast("cpu", dtype=torch.bfloat16) if config.bf16
                else contextlib.nullcontext())
    with autocast:
        embeddings = model(inputs)
    embeddings = embeddings.float()
    if config.loss == SELF_SUPERVISED:
        first, second = embeddings.chunk(2)
        return sscd_loss(first, second)
    if config.loss == "softmax":
        return softmax_loss(model.logits(embeddings), labels)  # type: ignore[operator]
    if config.loss == "contrastive":
        return contrastive_loss(embeddings, labels, margin=config.margin)
    return triplet_loss(embeddings, labels, margin=config.margin)


def _epoch(model: nn.Module, train_set: Dataset[tuple[Tensor, int]], config: TrainConfig,
           run: _Run, epoch: int, hooks: _Hooks) -> float:
    """One pass over the epoch's batches; the mean batch loss."""
    run.batches.set_epoch(epoch)
    total, count = 0.0, len(run.batches)
    model.train()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(np.random.SeedSequence([config.seed, epoch]).generate_state(1)[0]))
        for step, indices in enumerate(_stoppable(run.batches, hooks, epoch)):
            inputs, labels = _load_batch(train_set, indices, config, epoch)
            loss = _loss(model, inputs, labels, config)
            run.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            run.optimizer.step()
            run.scheduler.step()
            total += float(loss.detach())
            hooks.on_batch(step + 1, count)
    return total / count


@dataclass(frozen=True)
class _Hooks:
    """The caller's callbacks."""

    validate: Callable[[nn.Module], float] | None
    on_epoch: Callable[[EpochRecord], None]
    should_stop: Callable[[], bool]
    on_batch: Callable[[int, int], None]


def _stoppable(batches: Sampler[list[int]], hooks: _Hooks, epoch: int) -> Iterable[list[int]]:
    """The batches, checking `should_stop` before each; TrainingStopped when it says so."""
    for indices in batches:
        if hooks.should_stop():
            raise TrainingStopped(
                f"training stopped during epoch {epoch + 1}; the checkpoint holds the "
                f"{epoch} finished epoch(s) and a new run with the same settings resumes there"
            )
        yield indices


def _validated(model: nn.Module, validate: Callable[[nn.Module], float] | None) -> float | None:
    """validate(model) in eval mode without gradients, or None without a validator."""
    if validate is None:
        return None
    model.eval()
    with torch.inference_mode():
        return float(validate(model))


def fit(
    model: nn.Module,
    train_set: Dataset[tuple[Tensor, int]],
    *,
    config: TrainConfig,
    checkpoint: Path,
    validate: Callable[[nn.Module], float] | None = None,
    on_epoch: Callable[[EpochRecord], None] = lambda record: None,
    should_stop: Callable[[], bool] = lambda: False,
    on_batch: Callable[[int, int], None] = lambda step, steps: None,
    labels: Sequence[int] | None = None,
    until_epoch: int | None = None,
) -> list[EpochRecord]:
    """Train `model` (an EmbeddingNet, or a ProjectionHead on vectors) on (input, label) items.

    Resumes from `checkpoint` when it exists and saves it after every epoch. `validate(model)`
    returns a validation mAP per epoch; `should_stop` is asked before every batch (cancel:
    TrainingStopped, nothing of the unfinished epoch is saved); `on_batch(step, steps)`
    reports progress. `labels` default to `train_set.labels`, else are read item by item.
    `until_epoch` stops after that many epochs (a job that runs one epoch per task); the
    schedule still spans `config.epochs`. Returns every epoch's record, resumed ones included.
    """
    if config.loss == "softmax" and getattr(model, "classifier", None) is None:
        raise InvalidTrainingConfig("the softmax loss needs a model with a classifier "
                                    "(EmbeddingNet built with classes=)")
    run = _new_run(model, config, _labels_of(train_set, labels))
    if checkpoint.exists():
        _resume(checkpoint, model, config, run)
        logger.info("resuming from %s after epoch %d", checkpoint, len(run.history))
    hooks = _Hooks(validate, on_epoch, should_stop, on_batch)
    last = config.epochs if until_epoch is None else min(until_epoch, config.epochs)
    for epoch in range(len(run.history), last):
        started = time.perf_counter()
        loss = _epoch(model, train_set, config, run, epoch, hooks)
        val_map = _validated(model, validate)
        record = EpochRecord(epoch + 1, loss, val_map, time.perf_counter() - started)
        run.history.append(record)
        _save(checkpoint, model, config, run)
        logger.info("epoch %d/%d loss %.4f val mAP %s (%.1fs)", record.epoch, config.epochs,
                    loss, "-" if val_map is None else f"{val_map:.4f}", record.seconds)
        on_epoch(record)
    model.eval()
    return run.history

