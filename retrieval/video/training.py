"""Training and scoring of a video classifier on uint8 clips: seeded, in memory, CPU-sized;
and the adapters that let the shared trainer (checkpoints, resume, cancel) train one."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch
from torch import nn
from torch.utils.data import Dataset

from lookalike.retrieval.video.classifiers import FrameAveraging


@dataclass(frozen=True)
class VideoTrainConfig:
    """Epochs, batch size, peak learning rate (Adam, cosine-annealed to zero over the run
    when `cosine`) and the seed of the shuffling and weights."""

    epochs: int = 6
    batch_size: int = 32
    lr: float = 3e-3
    seed: int = 0
    cosine: bool = True


def train_classifier(model: nn.Module, clips: npt.NDArray[np.uint8],
                     labels: npt.NDArray[np.int64], config: VideoTrainConfig) -> list[float]:
    """Train in place with cross-entropy; the mean loss of each epoch. Frame averaging over
    a frozen encoder trains its head on frame features computed once, not every epoch."""
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(trainable, lr=config.lr)
    steps = config.epochs * -(-len(clips) // config.batch_size)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * step / steps))
        if config.cosine else 1.0)
    x, forward = _training_inputs(model, clips)
    y = torch.from_numpy(labels)
    losses = []
    model.train()
    for _ in range(config.epochs):
        order = torch.from_numpy(rng.permutation(len(x)))
        total = 0.0
        for start in range(0, len(x), config.batch_size):
            batch = order[start:start + config.batch_size]
            loss = nn.functional.cross_entropy(forward(x[batch]), y[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            total += loss.item() * len(batch)
        losses.append(total / len(x))
    return losses


def _training_inputs(model: nn.Module, clips: npt.NDArray[np.uint8], batch_size: int = 64
                     ) -> tuple[torch.Tensor, Callable[[torch.Tensor], torch.Tensor]]:
    """What each step feeds and the function from it to logits: the clips and the model, or,
    for frame averaging over a frozen encoder, its frame features and its head."""
    x = torch.from_numpy(clips)
    if not (isinstance(model, FrameAveraging) and not model.train_encoder):
        return x, model
    model.eval()
    with torch.no_grad():
        features = torch.cat([model.frame_features(x[i:i + batch_size])
                              for i in range(0, len(x), batch_size)])
    return features, model.classify_features


@torch.no_grad()
def predict(model: nn.Module, clips: npt.NDArray[np.uint8],
            batch_size: int = 64) -> npt.NDArray[np.int64]:
    """The predicted class of each clip."""
    model.eval()
    x = torch.from_numpy(clips)
    out = [model(x[i:i + batch_size]).argmax(dim=1) for i in range(0, len(x), batch_size)]
    return torch.cat(out).numpy().astype(np.int64)


def accuracy(predicted: npt.NDArray[np.int64], labels: npt.NDArray[np.int64]) -> float:
    return float((predicted == labels).mean()) if len(labels) else 0.0


class ClipItems(Dataset[tuple[torch.Tensor, int]]):
    """uint8 clips (N, T, H, W, 3) and their labels as (clip, label) items for the shared
    trainer (lookalike.retrieval.training.trainer.fit)."""

    def __init__(self, clips: npt.NDArray[np.uint8], labels: npt.NDArray[np.int64]) -> None:
        self.clips = clips
        self.labels = [int(label) for label in labels]

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return torch.from_numpy(self.clips[index]), self.labels[index]


class TrainableClassifier(nn.Module):
    """A video classifier in the shape the shared trainer's softmax loss expects: forward
    gives the logits, `classifier`/`logits` pass them through unchanged."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.classifier = nn.Identity()

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.model(clips)
        return logits

    def logits(self, embeddings: torch.Tensor) -> torch.Tensor:
        return embeddings


def accuracy_validator(clips: npt.NDArray[np.uint8], labels: npt.NDArray[np.int64]
                       ) -> Callable[[nn.Module], float]:
    """validate(model) for the trainer: accuracy on held-out clips."""
    def validate(model: nn.Module) -> float:
        result = accuracy(predict(model, clips), labels)
        model.train()
        return result

    return validate


@torch.no_grad()
def classify(model: nn.Module, clip: npt.NDArray[np.uint8]) -> tuple[int, float]:
    """The most probable class of one clip (T, H, W, 3) and its softmax probability."""
    model.eval()
    probabilities = torch.softmax(model(torch.from_numpy(clip[None])), dim=1)[0]
    best = int(probabilities.argmax())
    return best, float(probabilities[best])
