"""Naming objects from their boxes alone: the trunk's pooled features of each true-box crop
and a linear head trained on them. Its held-out accuracy is a measured ceiling on how well
the trunk's features tell the classes apart, with the finding of objects taken out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from lookalike.retrieval.detection.training import Sample, normalised


@dataclass(frozen=True)
class Crops:
    """Object crops (N, side, side, 3) uint8 and their 1-based labels (N,)."""

    pixels: np.ndarray
    labels: np.ndarray


def box_crops(samples: Sequence[Sample], *, side: int, margin: float = 0.1) -> Crops:
    """Every true box of every sample, grown by `margin` of its size a side (clipped to the
    image) and resized to side x side."""
    pixels, labels = [], []
    for sample in samples:
        height, width = sample.pixels.shape[:2]
        image = Image.fromarray(sample.pixels)
        for (x0, y0, x1, y1), label in zip(sample.boxes, sample.labels, strict=True):
            dx, dy = (x1 - x0) * margin, (y1 - y0) * margin
            box = (max(0, int(x0 - dx)), max(0, int(y0 - dy)), min(width, int(x1 + dx) + 1),
                   min(height, int(y1 + dy) + 1))
            pixels.append(np.asarray(image.crop(box).resize((side, side),
                                                            Image.Resampling.BILINEAR)))
            labels.append(int(label))
    return Crops(np.stack(pixels), np.asarray(labels, dtype=np.int64))


@torch.no_grad()
def pooled_features(trunk: nn.Module, crops: Crops, *, batch_size: int = 64) -> torch.Tensor:
    """(N, C) globally pooled trunk features of the crops (trunk in eval mode)."""
    trunk.eval()
    parts = []
    for start in range(0, len(crops.pixels), batch_size):
        batch = torch.stack([normalised(p) for p in crops.pixels[start:start + batch_size]])
        parts.append(F.adaptive_avg_pool2d(trunk(batch), 1).flatten(1))
    return torch.cat(parts)


def fit_linear_head(features: torch.Tensor, labels: np.ndarray, classes: int, *,
                    steps: int = 300, lr: float = 1e-2, weight_decay: float = 1e-3,
                    seed: int = 0) -> nn.Linear:
    """A linear classifier on standardised features (statistics folded into its weights),
    trained full-batch with AdamW on cross-entropy; labels are 1-based."""
    torch.manual_seed(seed)
    mean, std = features.mean(0), features.std(0) + 1e-6
    head = nn.Linear(features.shape[1], classes)
    optimizer = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=weight_decay)
    scaled, targets = (features - mean) / std, torch.from_numpy(labels - 1)
    for _ in range(steps):
        optimizer.zero_grad()
        F.cross_entropy(head(scaled), targets).backward()
        optimizer.step()
    with torch.no_grad():  # head(x) == raw head((x - mean) / std)
        head.weight.div_(std)
        head.bias.sub_(head.weight @ mean)
    return head


@torch.no_grad()
def confusion(head: nn.Linear, features: torch.Tensor, labels: np.ndarray,
              classes: int) -> np.ndarray:
    """(K, K) counts: row the true class, column the head's answer (0-based indexes)."""
    answers = head(features).argmax(1).numpy()
    table = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(table, (labels - 1, answers), 1)
    return table
