"""Detection networks on the ImageNet MobileNetV2 trunk: a one-object localization head and
multi-object detectors built from torchvision's detection classes (FCOS, Faster R-CNN).

No detection weights ship in any package: only the trunk is pretrained (the registry's
MobileNetV2 file); heads, FPN and detector layers start random and are trained by our jobs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from lookalike.retrieval.detection.namer import (
    CONTEXT,
    JITTER,
    Namer,
    PretrainedNamer,
    TwoStage,
)
from lookalike.retrieval.errors import InvalidTrainingConfig
from lookalike.retrieval.models.registry import get_backbone, load_model
from lookalike.retrieval.models.specs import IMAGENET_MEAN, IMAGENET_STD
from lookalike.retrieval.models.vision import vision_models, vision_ops

TRUNK_BACKBONE = "mobilenet_v2"
TWO_STAGE = "fcos-namer"  # a class-agnostic FCOS whose boxes a small CNN names
TWO_STAGE_PRETRAINED = "fcos-mobilenet-namer"  # ... whose boxes a fine-tuned trunk names
TWO_STAGES = (TWO_STAGE, TWO_STAGE_PRETRAINED)
ARCHITECTURES = ("fcos", "fasterrcnn", *TWO_STAGES)
_TRUNK_CHANNELS = 1280  # MobileNetV2 `features`' last maps
# MobileNetV2 `features` blocks ending at strides 8, 16 and 32, and their channels.
_RETURN_LAYERS = {"6": "0", "13": "1", "18": "2"}
_IN_CHANNELS = [32, 96, _TRUNK_CHANNELS]
_FPN_CHANNELS = 96
# the localizer's top-down maps start from these stride-16 and stride-8 blocks (channels)
_MID_BLOCK, _MID_CHANNELS = 13, 96
_FINE_BLOCK, _FINE_CHANNELS = 6, 32
_MAX_LOG_SIZE = 3.0  # a localizer's box is at most e^3 x its prior (0.25 side): 5 sides
_FROZEN_BLOCKS = 4  # the stem and first inverted residuals stay as ImageNet trained them
# FCOS on P3-P5 only: its object sizes per level are 4x-8x these (0-64, 64-128, 128+ px),
# which covers the scenes' 14-180 px objects; P6/P7 would only add cost at these sides.
_FCOS_SIZES = ((8,), (16,), (32,))
_FCOS_HEAD_CONVS = 2  # torchvision's default 4 convs a branch doubled the step's time


@dataclass(frozen=True)
class DetectorConfig:
    """What a detector file records besides its tensors: architecture, classes, input side."""

    architecture: str
    classes: tuple[str, ...]
    size: int
    score_threshold: float = 0.3

    def check(self) -> None:
        """Raise InvalidTrainingConfig on an unknown architecture, no classes or a tiny side."""
        if self.architecture not in ARCHITECTURES:
            raise InvalidTrainingConfig(f"unknown detector architecture {self.architecture!r}; "
                                        f"available: {', '.join(ARCHITECTURES)}")
        if not self.classes or self.size < 32:
            raise InvalidTrainingConfig(f"a detector needs classes and a side >= 32 px, got "
                                        f"{len(self.classes)} classes and {self.size} px")


def mobilenet_trunk(weights: Path | None) -> nn.Sequential:
    """MobileNetV2's `features` with the ImageNet file (None: random, for shape tests only)."""
    model = load_model(get_backbone(TRUNK_BACKBONE), weights=weights)
    return cast(nn.Sequential, model.features)


def frozen_batch_norm(module: nn.Module) -> nn.Module:
    """`module` with every BatchNorm2d replaced by a FrozenBatchNorm2d holding its statistics:
    detection batches are too small to re-estimate them (torchvision does the same)."""
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            frozen = vision_ops().FrozenBatchNorm2d(child.num_features, eps=child.eps)
            for key in ("weight", "bias", "running_mean", "running_var"):
                getattr(frozen, key).copy_(getattr(child, key).detach())
            setattr(module, name, frozen)
        else:
            frozen_batch_norm(child)
    return module


def detection_trunk(weights: Path | None) -> nn.Sequential:
    """The trunk as every head here trains it: batch norm frozen at ImageNet's statistics and
    the first blocks frozen. Small batches of scenes cannot re-estimate batch norm: trained
    live, the localizer's eval-mode outputs stayed at chance (13 % IoU >= 0.5)."""
    trunk = mobilenet_trunk(weights)
    frozen_batch_norm(trunk)
    for parameter in trunk[:_FROZEN_BLOCKS].parameters():
        parameter.requires_grad_(False)
    return trunk


def build_detector(config: DetectorConfig, *, trunk_weights: Path | None) -> nn.Module:
    """A torchvision FCOS or Faster R-CNN with an FPN on the MobileNetV2 trunk, or a
    two-stage FCOS finder + namer (small, or a second MobileNetV2 trunk fine-tuned whole).

    Images are resized to `config.size` (short and long side) and normalised with ImageNet's
    mean and std by the detector's own transform; outputs are boxes in input pixels."""
    config.check()
    if config.architecture in TWO_STAGES:
        finder = build_detector(DetectorConfig("fcos", ("object",), config.size),
                                trunk_weights=trunk_weights)
        if config.architecture == TWO_STAGE:
            return TwoStage(finder, Namer(len(config.classes)))
        namer = PretrainedNamer(mobilenet_trunk(trunk_weights), _TRUNK_CHANNELS,
                                len(config.classes))
        return TwoStage(finder, namer)
    trunk = detection_trunk(trunk_weights)
    classes = len(config.classes) + 1  # + background
    common = {"min_size": config.size, "max_size": config.size,
              "image_mean": list(IMAGENET_MEAN), "image_std": list(IMAGENET_STD)}
    detection = vision_models().detection
    if config.architecture == "fcos":
        backbone = detection.backbone_utils.BackboneWithFPN(trunk, _RETURN_LAYERS, _IN_CHANNELS,
                                                            _FPN_CHANNELS)
        backbone.fpn.extra_blocks = None  # P3-P5, no pooled extra level
        head = detection.fcos.FCOSHead(_FPN_CHANNELS, 1, classes, num_convs=_FCOS_HEAD_CONVS)
        anchors = detection.anchor_utils.AnchorGenerator(_FCOS_SIZES,
                                                         ((1.0,),) * len(_FCOS_SIZES))
        fcos: nn.Module = detection.FCOS(backbone, classes, anchor_generator=anchors, head=head,
                                         score_thresh=0.05, detections_per_img=50, **common)
        return fcos
    backbone = detection.backbone_utils.BackboneWithFPN(
        trunk, _RETURN_LAYERS, _IN_CHANNELS, _FPN_CHANNELS,
        extra_blocks=vision_ops().feature_pyramid_network.LastLevelMaxPool())
    anchors = detection.anchor_utils.AnchorGenerator(((16,), (32,), (64,), (128,)),
                                                     ((0.5, 1.0, 2.0),) * 4)
    rcnn: nn.Module = detection.FasterRCNN(backbone, classes, rpn_anchor_generator=anchors,
                                           box_detections_per_img=50, box_score_thresh=0.05,
                                           rpn_pre_nms_top_n_train=600,
                                           rpn_post_nms_top_n_train=300,
                                           rpn_pre_nms_top_n_test=300,
                                           rpn_post_nms_top_n_test=100, **common)
    return rcnn


def cell_centres(side: int, dtype: torch.dtype) -> torch.Tensor:
    """(side*side, 2) centres of a side x side map's cells as x, y fractions, row-major."""
    steps = (torch.arange(side, dtype=dtype) + 0.5) / side
    y, x = torch.meshgrid(steps, steps, indexing="ij")
    return torch.stack([x.flatten(), y.flatten()], dim=1)


@dataclass(frozen=True)
class DenseBoxes:
    """A localizer's answer at every cell of its stride-8 map (row-major, `side` x `side`
    cells): objectness logits (N, side*side), a softmax over the cells as a scene holds one
    object, and each cell's box (N, side*side, 4) as unclamped x0, y0, x1, y1 fractions."""

    scores: torch.Tensor
    boxes: torch.Tensor
    side: int

    def best(self) -> torch.Tensor:
        """(N, 4) box of each image's likeliest cell."""
        index = self.scores.argmax(dim=1)
        return self.boxes[torch.arange(len(index)), index]

    def near(self, targets: torch.Tensor) -> torch.Tensor:
        """(N, side*side) weights of the cells within a cell of each (N, 4) target box's
        centre, a Gaussian (sigma half a cell) of the distance, zero elsewhere; the cell
        holding the centre is always among them (its centre is at most 0.71 cells away)."""
        centre = (targets[:, :2] + targets[:, 2:]) / 2
        cells = cell_centres(self.side, targets.dtype)
        distance = torch.cdist(centre, cells) * self.side  # in cells
        return torch.exp(-2 * distance ** 2) * (distance < 1)


class Localizer(nn.Module):
    """The textbook localization network: one shared trunk, a class head and a box head.

    Input (N, 3, S, S) normalised images; output (N, K) class logits and (N, 4) boxes as
    (x0, y0, x1, y1) fractions of the side in [0, 1]. The box head is dense (CenterNet /
    FCOS style) over a stride-8 map (the trunk's stride-32, -16 and -8 blocks added top-down,
    as in an FPN; at stride 16 the smallest glyphs, 9 px at 128, were a cell or less): each
    cell scores whether the object's centre lies near it and regresses a box as a centre
    offset in cells and a log size against `prior` (zero-initialised, so every cell starts
    at a prior-sized box on itself, and nothing saturates); the best cell answers. The class
    head names the object from the stride-8 block and the merged stride-16 map RoIAligned
    inside its box (the true box, jittered, in training; the answered box after), not from
    the whole image's average, which the background dominates."""

    def __init__(self, trunk: nn.Sequential, classes: int, *, width: int = 1280,
                 channels: int = 128, prior: float = 0.25, roi: int = 4) -> None:
        super().__init__()
        self.trunk = trunk
        self.prior = prior
        self.roi = roi
        self.deep = nn.Conv2d(width, channels, 1)
        self.mid = nn.Conv2d(_MID_CHANNELS, channels, 1)
        self.merge = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU())
        self.fine = nn.Conv2d(_FINE_CHANNELS, channels, 1)
        self.merge_fine = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU())
        self.objectness = nn.Conv2d(channels, 1, 3, padding=1)
        self.regress = nn.Conv2d(channels, 4, 3, padding=1)
        for parameter in self.regress.parameters():
            nn.init.zeros_(parameter)
        self.classify = nn.Sequential(nn.Linear((_FINE_CHANNELS + channels) * roi * roi, 256),
                                      nn.ReLU(), nn.Dropout(0.2), nn.Linear(256, classes))

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N,3,S,S) to ((N,K) logits, (N,4) boxes in [0, 1])."""
        fine, features, boxed = self.features(images)
        boxes = self.dense(boxed).best().clamp(0, 1)
        return self.name((fine, features), boxes), boxes

    def taught(self, images: torch.Tensor, targets: torch.Tensor
               ) -> tuple[torch.Tensor, DenseBoxes]:
        """Training's outputs: logits named inside the (N, 4) true boxes, each moved and
        resized by up to JITTER of its size as answered boxes miss, and every cell's box."""
        fine, features, boxed = self.features(images)
        size = (targets[:, 2:] - targets[:, :2]).repeat(1, 2)
        moved = targets + (torch.rand_like(targets) * 2 - 1) * JITTER * size
        return self.name((fine, features), moved), self.dense(boxed)

    def features(self, images: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The trunk's stride-8 map; its stride-16 map with its stride-32 map upsampled and
        added, merged; and that upsampled and added to the stride-8 map, merged (a small
        top-down FPN: the box head's map)."""
        fine = self.trunk[:_FINE_BLOCK + 1](images)
        mid = self.trunk[_FINE_BLOCK + 1:_MID_BLOCK + 1](fine)
        deep = F.interpolate(self.deep(self.trunk[_MID_BLOCK + 1:](mid)), size=mid.shape[-2:],
                             mode="nearest")
        merged = self.merge(self.mid(mid) + deep)
        up = F.interpolate(merged, size=fine.shape[-2:], mode="nearest")
        return fine, merged, self.merge_fine(self.fine(fine) + up)

    def dense(self, features: torch.Tensor) -> DenseBoxes:
        """Every cell's objectness and box (centre offset in cells, log size over prior)."""
        side = features.shape[-1]
        raw = self.regress(features).flatten(2).transpose(1, 2)  # (N, cells, 4)
        centre = cell_centres(side, raw.dtype) + raw[..., :2] / side
        # as torchvision's box coder: bound the log size so exp cannot overflow early on
        size = self.prior * torch.exp(raw[..., 2:].clamp(max=_MAX_LOG_SIZE))
        boxes = torch.cat([centre - size / 2, centre + size / 2], dim=-1)
        return DenseBoxes(self.objectness(features).flatten(1), boxes, side)

    def name(self, maps: tuple[torch.Tensor, ...], boxes: torch.Tensor) -> torch.Tensor:
        """(N, K) logits from the features of `maps` inside each image's (N, 4) box, with
        CONTEXT."""
        size = (boxes[:, 2:] - boxes[:, :2]).repeat(1, 2)
        grown = boxes + torch.tensor([-1.0, -1.0, 1.0, 1.0]) * CONTEXT * size
        indexed = torch.cat([torch.arange(len(boxes), dtype=boxes.dtype)[:, None], grown], 1)
        align = vision_ops().roi_align
        pooled = [align(m, indexed, output_size=self.roi, spatial_scale=m.shape[-1],
                        sampling_ratio=2, aligned=True).flatten(1) for m in maps]
        logits: torch.Tensor = self.classify(torch.cat(pooled, dim=1))
        return logits


def trunk_parameters(model: nn.Module) -> set[int]:
    """Ids of the pretrained trunk's parameters in a localizer, detector or pretrained namer
    (trained slower); none in the small namer, which has no pretrained part."""
    if isinstance(model, Namer):
        return set()
    if isinstance(model, PretrainedNamer):
        trunk = model.features
    elif isinstance(model, Localizer):
        trunk = model.trunk
    else:
        trunk = model.get_submodule("backbone.body")
    return {id(p) for p in trunk.parameters()}


def localizer_loss(logits: torch.Tensor, dense: DenseBoxes, labels: torch.Tensor,
                   targets: torch.Tensor, *, box_weight: float = 5.0) -> torch.Tensor:
    """Cross-entropy on the class + cross-entropy over the cells towards those near the
    object's centre (one object an image) + smooth-L1 and GIoU on those cells' boxes
    (fractions of the side), so whichever near cell answers has learnt the box."""
    near = dense.near(targets)
    cells = F.cross_entropy(dense.scores, near / near.sum(dim=1, keepdim=True))
    chosen = near > 0
    boxes = dense.boxes[chosen]
    wanted = targets[:, None, :].expand_as(dense.boxes)[chosen]
    box_loss = F.smooth_l1_loss(boxes, wanted, beta=0.05) + (
        vision_ops().generalized_box_iou_loss(boxes, wanted, reduction="mean"))
    loss: torch.Tensor = F.cross_entropy(logits, labels) + cells + box_weight * box_loss
    return loss
