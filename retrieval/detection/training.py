"""Training the detectors and the localization head, an epoch at a time, resumable.

Scenes are held in memory as uint8 arrays at the detector's side (the generated sets are a
few hundred small images); an epoch shuffles them with a generator seeded by (seed, epoch),
so a run resumed from a checkpoint draws the same batches as one that never stopped.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from lookalike.retrieval.detection.coco import CocoSet
from lookalike.retrieval.detection.namer import CropNamer, namer_loss
from lookalike.retrieval.detection.networks import Localizer, localizer_loss, trunk_parameters
from lookalike.retrieval.detection.scenes import Scene
from lookalike.retrieval.errors import TrainingStopped
from lookalike.retrieval.models.specs import IMAGENET_MEAN, IMAGENET_STD
from lookalike.retrieval.training.checkpoint import load_checkpoint, save_checkpoint


@dataclass(frozen=True)
class Sample:
    """One training image (S, S, 3) uint8 with its boxes (M, 4) in its pixels, labels (M,)."""

    pixels: np.ndarray
    boxes: np.ndarray
    labels: np.ndarray


@dataclass(frozen=True)
class TrainSettings:
    """Optimiser and schedule: AdamW at `lr` (the pretrained trunk at `lr * trunk_lr_scale`),
    warmed up linearly over the first `warmup` share of the steps, then cosine to zero;
    `batch_size` images a step, seeded shuffles and horizontal flips."""

    epochs: int = 10
    batch_size: int = 8
    lr: float = 1e-3
    weight_decay: float = 1e-4
    seed: int = 0
    trunk_lr_scale: float = 1.0
    warmup: float = 0.05
    flip: bool = True

    def lr_factor(self, step: int, steps: int) -> float:
        """The share of `lr` at step `step` of `steps` (a function of the step only, so a
        resumed run continues the same schedule)."""
        warm = max(1, round(self.warmup * steps))
        if step < warm:
            return (step + 1) / warm
        return 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, steps - warm)))


def scene_samples(scenes: Sequence[Scene], *, size: int) -> list[Sample]:
    """Generated scenes as samples at size x size (their true boxes scaled to match)."""
    samples = []
    for scene in scenes:
        height, width = scene.image.shape[:2]
        pixels = scene.image
        if (height, width) != (size, size):
            pixels = np.array(Image.fromarray(pixels).resize((size, size),
                                                             Image.Resampling.BILINEAR))
        scale = np.array([size / width, size / height] * 2, dtype=np.float32)
        boxes = np.asarray([o.box for o in scene.objects], dtype=np.float32).reshape(-1, 4)
        samples.append(Sample(pixels, boxes * scale,
                              np.asarray([o.label + 1 for o in scene.objects], dtype=np.int64)))
    return samples


def load_samples(coco: CocoSet, images_dir: Path, *, size: int) -> list[Sample]:
    """Every image of a COCO set, resized to size x size, its boxes scaled to match."""
    samples = []
    for record in coco.images:
        with Image.open(images_dir / record.file_name) as image:
            pixels = np.array(image.convert("RGB").resize((size, size),
                                                           Image.Resampling.BILINEAR))
        scale = np.array([size / record.width, size / record.height] * 2, dtype=np.float32)
        boxes = np.asarray(record.boxes, dtype=np.float32).reshape(-1, 4) * scale
        samples.append(Sample(pixels, boxes, np.asarray(record.labels, dtype=np.int64)))
    return samples


def to_tensor(pixels: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 to a (3, H, W) float tensor in [0, 1] (detectors normalise it)."""
    return torch.from_numpy(np.array(pixels, dtype=np.float32)).permute(2, 0, 1) / 255.0


def normalised(pixels: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 to a (3, H, W) tensor normalised with ImageNet's mean and std."""
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return (to_tensor(pixels) - mean) / std


def flipped(sample: Sample) -> Sample:
    """The sample mirrored left to right, its boxes with it."""
    width = sample.pixels.shape[1]
    boxes = sample.boxes.copy()
    boxes[:, 0], boxes[:, 2] = width - sample.boxes[:, 2], width - sample.boxes[:, 0]
    return Sample(np.ascontiguousarray(sample.pixels[:, ::-1]), boxes, sample.labels)


def _order(count: int, settings: TrainSettings, epoch: int) -> list[list[int]]:
    """The epoch's batches of sample indexes, the same for the same (seed, epoch)."""
    order = np.random.default_rng([settings.seed, epoch]).permutation(count)
    return [order[i:i + settings.batch_size].tolist()
            for i in range(0, count, settings.batch_size)]


def detector_step(model: nn.Module, batch: Sequence[Sample]) -> torch.Tensor:
    """The summed torchvision detection losses of one batch (model in train mode)."""
    images = [to_tensor(s.pixels) for s in batch]
    targets = [{"boxes": torch.from_numpy(s.boxes), "labels": torch.from_numpy(s.labels)}
               for s in batch]
    losses: dict[str, torch.Tensor] = model(images, targets)
    return torch.stack(list(losses.values())).sum()


def localizer_step(model: nn.Module, batch: Sequence[Sample]) -> torch.Tensor:
    """Cross-entropy + cell and box losses of one batch of one-object samples (labels
    1-based); the class head names the true boxes, as a detector's second stage does."""
    assert isinstance(model, Localizer), "localizer_step trains a Localizer"
    side = batch[0].pixels.shape[0]
    images = torch.stack([normalised(s.pixels) for s in batch])
    labels = torch.tensor([int(s.labels[0]) - 1 for s in batch])
    targets = torch.from_numpy(np.stack([s.boxes[0] for s in batch]) / side)
    logits, dense = model.taught(images, targets)
    return localizer_loss(logits, dense, labels, targets)


def namer_step(model: nn.Module, batch: Sequence[Sample]) -> torch.Tensor:
    """Cross-entropy of a namer on jittered crops of the batch's true boxes (labels 1-based)."""
    assert isinstance(model, CropNamer), "namer_step trains a namer"
    return namer_loss(model, [to_tensor(s.pixels) for s in batch],
                      [torch.from_numpy(s.boxes) for s in batch],
                      [torch.from_numpy(s.labels) for s in batch])


Step = Callable[[nn.Module, Sequence[Sample]], torch.Tensor]
EpochSamples = Callable[[int], Sequence[Sample]]  # an epoch's own images (fresh scenes)


@dataclass(frozen=True)
class EpochLoss:
    """One finished epoch: its number, mean loss and seconds."""

    epoch: int
    loss: float
    seconds: float


def train(model: nn.Module, samples: Sequence[Sample] | EpochSamples, step: Step, *,
          settings: TrainSettings, checkpoint: Path, until_epoch: int,
          should_stop: Callable[[], bool] = lambda: False) -> list[EpochLoss]:
    """Train epochs up to `until_epoch` (exclusive), resuming from `checkpoint` when it
    exists and saving it after each epoch; returns every epoch's record so far. `samples`
    is the same images every epoch, or a function of the epoch giving that epoch's."""
    draw = samples if callable(samples) else _every_epoch(samples)
    model.to(memory_format=torch.channels_last)  # its convolutions train 1.2-1.8x faster
    trunk = trunk_parameters(model)
    trained = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in trained if id(p) not in trunk], "lr": settings.lr},
              {"params": [p for p in trained if id(p) in trunk],
               "lr": settings.lr * settings.trunk_lr_scale}]
    groups = [group for group in groups if group["params"]]
    for group in groups:
        group["initial_lr"] = group["lr"]
    optimizer = torch.optim.AdamW(groups, lr=settings.lr, weight_decay=settings.weight_decay)
    history: list[EpochLoss] = []
    start = 0
    if checkpoint.is_file():
        state = load_checkpoint(checkpoint)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        history = [EpochLoss(*row) for row in state["history"]]
        start = len(history)
    for epoch in range(start, min(until_epoch, settings.epochs)):
        history.append(_epoch(model, draw(epoch), step, optimizer, settings, epoch,
                              should_stop))
        save_checkpoint(checkpoint, {"model": model.state_dict(),
                                     "optimizer": optimizer.state_dict(),
                                     "history": [[h.epoch, h.loss, h.seconds] for h in history]})
    return history


def _every_epoch(samples: Sequence[Sample]) -> EpochSamples:
    """The same images for every epoch."""
    return lambda _epoch: samples


def _epoch(model: nn.Module, samples: Sequence[Sample], step: Step,
           optimizer: torch.optim.Optimizer, settings: TrainSettings, epoch: int,
           should_stop: Callable[[], bool]) -> EpochLoss:
    """One pass over the samples; TrainingStopped between steps when asked to stop."""
    torch.manual_seed(settings.seed * 1000 + epoch)
    flips = np.random.default_rng([settings.seed, epoch, 1]).random(len(samples)) < 0.5
    model.train()
    started, losses = time.perf_counter(), []
    batches = _order(len(samples), settings, epoch)
    for number, indexes in enumerate(batches):
        if should_stop():
            raise TrainingStopped(f"training stopped during epoch {epoch}")
        factor = settings.lr_factor(epoch * len(batches) + number, settings.epochs * len(batches))
        for group in optimizer.param_groups:
            group["lr"] = group["initial_lr"] * factor
        batch = [flipped(samples[i]) if settings.flip and flips[i] else samples[i]
                 for i in indexes]
        loss = step(model, batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    model.eval()
    return EpochLoss(epoch, float(np.mean(losses)), time.perf_counter() - started)


@torch.no_grad()
def detect(model: nn.Module, images: Sequence[np.ndarray],
           batch_size: int = 8) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(boxes (M, 4) in each image's pixels, scores (M,), 1-based labels (M,)) per image;
    never the background label 0."""
    model.eval()
    found: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for start in range(0, len(images), batch_size):
        outputs = model([to_tensor(p) for p in images[start:start + batch_size]])
        for output in outputs:
            real = output["labels"] > 0  # FCOS counts the background as a class it may answer
            found.append((output["boxes"][real].numpy(), output["scores"][real].numpy(),
                          output["labels"][real].numpy()))
    return found


@torch.no_grad()
def localize(model: Localizer, images: Sequence[np.ndarray]
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Boxes (N, 4) in pixels, 1-based labels (N,) and their probabilities for S x S images."""
    model.eval()
    logits, boxes = model(torch.stack([normalised(p) for p in images]))
    probabilities = torch.softmax(logits, dim=1)
    score, label = probabilities.max(dim=1)
    side = images[0].shape[0]
    return (boxes * side).numpy(), label.numpy() + 1, score.numpy()
