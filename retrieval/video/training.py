"""Training and scoring of a video classifier on uint8 clips: seeded, in memory, CPU-sized;
and the adapters that let the shared trainer (checkpoints, resume, cancel) train one."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch
from torch import nn
from torch.utils.data import Dataset


@dataclass(frozen=True)
class VideoTrainConfig:
    """Epochs, batch size, learning rate (Adam) and the seed of the shuffling and weights."""

    epochs: int = 6
    batch_size: int = 32
    lr: float = 3e-3
    seed: int = 0


def train_classifier(model: nn.Module, clips: npt.NDArray[np.uint8],
                     labels: npt.NDArray[np.int64], config: VideoTrainConfig) -> list[float]:
    """Train in place with cross-entropy; the mean loss of each epoch."""
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(trainable, lr=config.lr)
    x, y = torch.from_numpy(clips), torch.from_numpy(labels)
    losses = []
    model.train()
    for _ in range(config.epochs):
        order = torch.from_numpy(rng.permutation(len(x)))
        total = 0.0
        for start in range(0, len(x), config.batch_size):
            batch = order[start:start + config.batch_size]
            loss = nn.functional.cross_entropy(model(x[batch]), y[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(batch)
        losses.append(total / len(x))
    return losses


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
