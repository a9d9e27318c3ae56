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
from torchvision.models.detection import FCOS, FasterRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.models.detection.fcos import FCOSHead
from torchvision.ops import FrozenBatchNorm2d, generalized_box_iou_loss
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

from lookalike.retrieval.detection.namer import Namer, TwoStage
from lookalike.retrieval.errors import InvalidTrainingConfig
from lookalike.retrieval.models.registry import get_backbone, load_model
from lookalike.retrieval.models.specs import IMAGENET_MEAN, IMAGENET_STD

TRUNK_BACKBONE = "mobilenet_v2"
TWO_STAGE = "fcos-namer"  # a class-agnostic FCOS whose boxes a small CNN names
ARCHITECTURES = ("fcos", "fasterrcnn", TWO_STAGE)
# MobileNetV2 `features` blocks ending at strides 8, 16 and 32, and their channels.
_RETURN_LAYERS = {"6": "0", "13": "1", "18": "2"}
_IN_CHANNELS = [32, 96, 1280]
_FPN_CHANNELS = 96
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
            frozen = FrozenBatchNorm2d(child.num_features, eps=child.eps)
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
    """A torchvision FCOS or Faster R-CNN with an FPN on the MobileNetV2 trunk, or the
    two-stage FCOS finder + namer.

    Images are resized to `config.size` (short and long side) and normalised with ImageNet's
    mean and std by the detector's own transform; outputs are boxes in input pixels."""
    config.check()
    if config.architecture == TWO_STAGE:
        finder = build_detector(DetectorConfig("fcos", ("object",), config.size),
                                trunk_weights=trunk_weights)
        return TwoStage(finder, Namer(len(config.classes)))
    trunk = detection_trunk(trunk_weights)
    classes = len(config.classes) + 1  # + background
    common = {"min_size": config.size, "max_size": config.size,
              "image_mean": list(IMAGENET_MEAN), "image_std": list(IMAGENET_STD)}
    if config.architecture == "fcos":
        backbone = BackboneWithFPN(trunk, _RETURN_LAYERS, _IN_CHANNELS, _FPN_CHANNELS)
        backbone.fpn.extra_blocks = None  # P3-P5, no pooled extra level
        head = FCOSHead(_FPN_CHANNELS, 1, classes, num_convs=_FCOS_HEAD_CONVS)
        anchors = AnchorGenerator(_FCOS_SIZES, ((1.0,),) * len(_FCOS_SIZES))
        fcos: nn.Module = FCOS(backbone, classes, anchor_generator=anchors, head=head,
                               score_thresh=0.05, detections_per_img=50, **common)
        return fcos
    backbone = BackboneWithFPN(trunk, _RETURN_LAYERS, _IN_CHANNELS, _FPN_CHANNELS,
                               extra_blocks=LastLevelMaxPool())
    anchors = AnchorGenerator(((16,), (32,), (64,), (128,)), ((0.5, 1.0, 2.0),) * 4)
    rcnn: nn.Module = FasterRCNN(backbone, classes, rpn_anchor_generator=anchors,
                      box_detections_per_img=50, box_score_thresh=0.05,
                      rpn_pre_nms_top_n_train=600, rpn_post_nms_top_n_train=300,
                      rpn_pre_nms_top_n_test=300, rpn_post_nms_top_n_test=100, **common)
    return rcnn


class Localizer(nn.Module):
    """The textbook localization network: one shared trunk, a class head and a box head.

    Input (N, 3, S, S) normalised images; output (N, K) class logits and (N, 4) boxes as
    (x0, y0, x1, y1) fractions of the side, kept ordered by construction (corner + size).
    The class head reads the globally pooled features; the box head reads a `grid` x `grid`
    map of them (like the fully connected layers over VGG's 7x7 map in the textbook design):
    a global average has thrown away where the object is."""

    def __init__(self, trunk: nn.Module, classes: int, *, width: int = 1280,
                 grid: int = 4, channels: int = 64) -> None:
        super().__init__()
        self.trunk = trunk
        self.grid = grid
        self.classify = nn.Sequential(nn.Dropout(0.2), nn.Linear(width, classes))
        self.reduce = nn.Sequential(nn.Conv2d(width, channels, 1), nn.ReLU())
        self.locate = nn.Sequential(nn.Linear(channels * grid * grid, 256), nn.ReLU(),
                                    nn.Linear(256, 4))

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N,3,S,S) to ((N,K) logits, (N,4) boxes in [0, 1])."""
        features = self.trunk(images)
        pooled = F.adaptive_avg_pool2d(features, 1).flatten(1)
        where = F.adaptive_avg_pool2d(self.reduce(features), self.grid).flatten(1)
        raw = torch.sigmoid(self.locate(where))
        corner, size = raw[:, :2], raw[:, 2:]
        return self.classify(pooled), torch.cat([corner, corner + size * (1 - corner)], dim=1)


def trunk_parameters(model: nn.Module) -> set[int]:
    """Ids of the pretrained trunk's parameters in a localizer or detector (trained slower);
    none in a namer, which has no pretrained part."""
    if isinstance(model, Namer):
        return set()
    trunk = model.trunk if isinstance(model, Localizer) else model.get_submodule("backbone.body")
    return {id(p) for p in trunk.parameters()}


def localizer_loss(logits: torch.Tensor, boxes: torch.Tensor, labels: torch.Tensor,
                   targets: torch.Tensor, *, box_weight: float = 5.0) -> torch.Tensor:
    """Cross-entropy on the class + smooth-L1 and GIoU on the box (fractions of the side)."""
    box_loss = F.smooth_l1_loss(boxes, targets, beta=0.05) + generalized_box_iou_loss(
        boxes, targets, reduction="mean")
    loss: torch.Tensor = F.cross_entropy(logits, labels) + box_weight * box_loss
    return loss
