"""3-D convolution against frame averaging on the sample clip tasks: accuracy on held-out
clips, direction accuracy within the pairs that differ only in direction, parameters,
training time and clips per second at inference (`lookalike video compare`)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from lookalike.retrieval.models.registry import get_backbone, load_feature_extractor
from lookalike.retrieval.models.weights import resolve_weights
from lookalike.retrieval.video.classifiers import Conv3dNet, FrameAveraging, parameter_count
from lookalike.retrieval.video.synthetic import TASKS
from lookalike.retrieval.video.training import (
    VideoTrainConfig,
    accuracy,
    predict,
    train_classifier,
)
from lookalike.services.config import Settings
from lookalike.services.video.clips import ClipSet, load_clip_folder

PAIRS = (("left", "right"), ("up", "down"), ("rotate_cw", "rotate_ccw"),
         ("zoom_in", "zoom_out"))
FRAME_INPUT = 96  # clip frames are upsampled to this for the ImageNet backbone
BASELINE_BACKBONE = "mobilenet_v2"


@dataclass(frozen=True)
class CompareRow:
    task: str
    model: str
    accuracy: float
    direction: float | None
    parameters: int
    trained: int
    train_s: float
    clips_per_s: float


def imagenet_frame_encoder(settings: Settings) -> tuple[nn.Module, int]:
    """The ImageNet MobileNetV2 trunk, frozen, global-average pooled: a frame's features."""
    spec = get_backbone(BASELINE_BACKBONE)
    weights = resolve_weights(spec, explicit=None, torch_home=settings.torch_home)
    trunk = load_feature_extractor(spec, weights=weights)
    encoder = nn.Sequential(nn.Upsample(size=(FRAME_INPUT, FRAME_INPUT), mode="bilinear"),
                            trunk, nn.AdaptiveAvgPool2d(1), nn.Flatten())
    return encoder, spec.dim


def direction_accuracy(predicted: np.ndarray, labels: np.ndarray,
                       classes: list[str]) -> float | None:
    """Among clips of a direction pair predicted inside their pair, the share with the right
    direction (0.5 is chance); None when the classes hold no pair."""
    pair_of = {classes.index(a): p for p, pair in enumerate(PAIRS) for a in pair if a in classes}
    inside = [(p, t) for p, t in zip(predicted, labels, strict=True)
              if t in pair_of and pair_of.get(int(p)) == pair_of[int(t)]]
    return float(np.mean([p == t for p, t in inside])) if inside else None


def compare(settings: Settings, directory: Path, *, epochs: int = 10,
            seed: int = 0) -> list[CompareRow]:
    """Train both models on each task's train clips and score them on its test clips."""
    torch.set_num_threads(settings.torch_threads or 1)
    rows = []
    for task in TASKS:
        train = load_clip_folder(directory / task / "train")
        test = load_clip_folder(directory / task / "test", classes=train.classes)
        torch.manual_seed(seed)
        models = {"3-D conv (C3D-style)": Conv3dNet(len(train.classes)),
                  "frame averaging (MobileNetV2)": FrameAveraging(
                      *imagenet_frame_encoder(settings), classes=len(train.classes),
                      train_encoder=False)}
        for name, model in models.items():
            rows.append(_run(task, name, model, train, test, VideoTrainConfig(
                epochs=epochs, seed=seed)))
    return rows


def _run(task: str, name: str, model: nn.Module, train: ClipSet, test: ClipSet,
         config: VideoTrainConfig) -> CompareRow:
    started = time.perf_counter()
    train_classifier(model, train.clips, train.labels, config)
    trained = time.perf_counter()
    predicted = predict(model, test.clips)
    inference = time.perf_counter() - trained
    direction = direction_accuracy(predicted, test.labels, test.classes)
    return CompareRow(task=task, model=name, accuracy=accuracy(predicted, test.labels),
                      direction=direction, parameters=parameter_count(model),
                      trained=len(train.labels), train_s=trained - started,
                      clips_per_s=len(test.labels) / inference)
