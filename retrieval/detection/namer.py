"""Two-stage detection: a class-agnostic finder boxes the objects, a CNN names their crops.

Naming is where a one-stage detector on the ImageNet trunk fails on these scenes (its
classes must be learned from a few thousand boxes at the coarse feature maps); a namer
trained on crops of the boxes themselves, at a fixed small side and standardised contrast,
sees each object whole. Two namers: a small CNN trained from scratch on 32-px crops, and the
ImageNet MobileNetV2 trunk fine-tuned on 64-px crops (slower). Each found box is answered
with its `top` likeliest classes, scored finder score x the square root of the class
probability, so a box the namer is unsure of still counts for the right class at a lower
rank. The root weighs how sure the finder is above how sure the namer is: on validation
scenes (not the held-out ones) it ranked the answers better than the plain product (README,
"Which boxes a two-stage detector stores").
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from lookalike.retrieval.models.vision import vision_ops

NAMER_SIDE = 32  # the small namer's crops are resampled to this side
PRETRAINED_SIDE = 64  # the pretrained namer's side: a 2 x 2 map at its last block
CONTEXT = 0.1  # share of the box's width and height added around it on each side
JITTER = 0.1  # training boxes move and resize by up to this share of their size
TOP_LABELS = 3  # classes answered per found box
NAME_WEIGHT = 0.5  # an answer's score is finder score x class probability ** NAME_WEIGHT


class Namer(nn.Module):
    """A small VGG-style CNN: (N, 3, NAMER_SIDE, NAMER_SIDE) standardised crops to logits."""

    side = NAMER_SIDE

    def __init__(self, classes: int, width: int = 32) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for out in (width, width * 2, width * 4):
            layers += [_conv(channels, out), _conv(out, out), nn.MaxPool2d(2)]
            channels = out
        self.features = nn.Sequential(*layers)
        self.classify = nn.Sequential(nn.Flatten(), nn.Dropout(0.3),
                                      nn.Linear(channels * (NAMER_SIDE // 8) ** 2, 256),
                                      nn.ReLU(), nn.Dropout(0.3), nn.Linear(256, classes))

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        """(N, 3, S, S) to (N, K) class logits."""
        logits: torch.Tensor = self.classify(self.features(crops))
        return logits


class PretrainedNamer(nn.Module):
    """A pretrained trunk (`features`, ending in `channels` maps), average-pooled, then a
    linear layer: (N, 3, PRETRAINED_SIDE, PRETRAINED_SIDE) standardised crops to logits.
    Fine-tuned whole, so naming starts from ImageNet's features rather than from nothing."""

    side = PRETRAINED_SIDE

    def __init__(self, features: nn.Module, channels: int, classes: int) -> None:
        super().__init__()
        self.features = features.train()  # the registry hands trunks back in eval mode
        self.classify = nn.Sequential(nn.Dropout(0.2), nn.Linear(channels, classes))

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        """(N, 3, S, S) to (N, K) class logits."""
        logits: torch.Tensor = self.classify(self.features(crops).mean(dim=(2, 3)))
        return logits


CropNamer = Namer | PretrainedNamer


def _conv(channels: int, out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(channels, out, 3, padding=1, bias=False),
                         nn.BatchNorm2d(out), nn.ReLU())


def box_crops(image: torch.Tensor, boxes: torch.Tensor, side: int = NAMER_SIDE) -> torch.Tensor:
    """Crops of (M, 4) pixel boxes, with CONTEXT around them, from one (3, H, W) image in
    [0, 1], resampled to `side` and standardised each to zero mean and unit variance (the
    objects' colours are arbitrary; their shading and shape are what names them)."""
    if len(boxes) == 0:
        return image.new_zeros((0, 3, side, side))
    size = boxes[:, 2:] - boxes[:, :2]
    grown = torch.cat([boxes[:, :2] - size * CONTEXT, boxes[:, 2:] + size * CONTEXT], dim=1)
    crops: torch.Tensor = vision_ops().roi_align(image[None], [grown.float()], output_size=side,
                                    sampling_ratio=2, aligned=True)
    mean = crops.mean(dim=(1, 2, 3), keepdim=True)
    std = crops.std(dim=(1, 2, 3), keepdim=True).clamp_min(1e-3)
    return (crops - mean) / std


def jittered(boxes: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Boxes moved and resized by up to JITTER of their size (drawn from torch's generator),
    as a finder's boxes miss the true ones, so the namer learns to name imperfect crops."""
    size = (boxes[:, 2:] - boxes[:, :2]).repeat(1, 2)
    noise = (torch.rand(boxes.shape, generator=generator) * 2 - 1) * JITTER
    moved = boxes + noise * size
    return torch.cat([torch.minimum(moved[:, :2], moved[:, 2:] - 1), moved[:, 2:]], dim=1)


class TwoStage(nn.Module):
    """A class-agnostic torchvision detector (`finder`, one class) and a `namer`.

    Called like a torchvision detector in eval mode: a list of (3, H, W) images in [0, 1]
    to a list of {"boxes", "scores", "labels"} with 1-based labels, best score first; each
    found box appears once per answered class (TOP_LABELS)."""

    def __init__(self, finder: nn.Module, namer: CropNamer, *, top: int = TOP_LABELS) -> None:
        super().__init__()
        self.finder = finder
        self.namer = namer
        self.top = top

    def forward(self, images: Sequence[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        """Boxes, scores and labels per image (eval mode only: stages train apart)."""
        found: list[dict[str, torch.Tensor]] = self.finder(list(images))
        answers = []
        for image, output in zip(images, found, strict=True):
            real = output["labels"] > 0  # FCOS may answer its background class too
            boxes, scores = output["boxes"][real], output["scores"][real]
            crops = box_crops(image, boxes, self.namer.side)
            probabilities = torch.softmax(self.namer(crops), dim=1)
            top = min(self.top, probabilities.shape[1])
            best, labels = probabilities.topk(top, dim=1)
            combined = (scores[:, None] * best ** NAME_WEIGHT).flatten()
            order = combined.argsort(descending=True)
            answers.append({"boxes": boxes.repeat_interleave(top, dim=0)[order],
                            "scores": combined[order],
                            "labels": (labels + 1).flatten()[order]})
        return answers


def namer_loss(namer: CropNamer, images: Sequence[torch.Tensor], boxes: Sequence[torch.Tensor],
               labels: Sequence[torch.Tensor]) -> torch.Tensor:
    """Cross-entropy of the namer on jittered crops of every true box of a batch (labels
    1-based, as in COCO files)."""
    crops = torch.cat([box_crops(image, jittered(b), namer.side)
                       for image, b in zip(images, boxes, strict=True)])
    return F.cross_entropy(namer(crops), torch.cat(list(labels)) - 1)
