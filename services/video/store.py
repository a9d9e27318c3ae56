"""Trained video classifiers on disk: content-addressed files (weights/video-<sha256>.pt),
named in the JSON document of video.registry, and the default one's label for a new clip. A
file is read back only while it hashes to its recorded sha256."""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from lookalike.retrieval.errors import WeightsMismatch
from lookalike.retrieval.video.classifiers import Conv3dNet, FrameAveraging
from lookalike.retrieval.video.decode import VideoLimits
from lookalike.retrieval.video.synthetic import ClipSpec
from lookalike.retrieval.video.training import classify
from lookalike.services.config import Settings
from lookalike.services.storage.files import write_atomic
from lookalike.services.video.clips import clip_frames
from lookalike.services.video.registry import default_entry

FORMAT = "lookalike-video-classifier/1"
MODELS = ("conv3d", "frames")


@dataclass(frozen=True)
class VideoLabel:
    """A video classifier's answer for one clip."""

    label: str
    score: float
    classifier: str


def build(kind: str, classes: int, settings: Settings) -> nn.Module:
    """An untrained model of `kind`: the C3D-style net, or frame averaging over the frozen
    ImageNet MobileNetV2."""
    if kind == "conv3d":
        return Conv3dNet(classes)
    from lookalike.services.video.compare import imagenet_frame_encoder
    return FrameAveraging(*imagenet_frame_encoder(settings), classes=classes,
                          train_encoder=False)


def store_classifier(model: nn.Module, *, kind: str, classes: list[str], spec: ClipSpec,
                     settings: Settings) -> tuple[Path, str]:
    """Write the classifier as weights/video-<sha256>.pt; returns (path, sha256)."""
    buffer = io.BytesIO()
    torch.save({"format": FORMAT, "kind": kind, "classes": classes, "frames": spec.frames,
                "size": spec.size, "state": model.state_dict()}, buffer)
    data = buffer.getvalue()
    sha = hashlib.sha256(data).hexdigest()
    return write_atomic(settings.layout.weights / f"video-{sha}.pt", data), sha


_LOADED: dict[str, tuple[nn.Module, dict[str, Any]]] = {}  # by sha256: the last one loaded


def _load(path: Path, sha256: str, settings: Settings) -> tuple[nn.Module, dict[str, Any]]:
    """The classifier in `path` (checked against its sha256), kept loaded for the next clip."""
    if sha256 in _LOADED:
        return _LOADED[sha256]
    data = path.read_bytes() if path.is_file() else b""
    found = hashlib.sha256(data).hexdigest()
    if found != sha256:
        raise WeightsMismatch(f"video classifier {path} is missing or hashes to {found}, not "
                              f"the recorded {sha256}; train it again (lookalike video train)")
    saved = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    model = build(saved["kind"], len(saved["classes"]), settings)
    model.load_state_dict(saved["state"])
    _LOADED.clear()
    _LOADED[sha256] = (model.eval(), saved)
    return _LOADED[sha256]


def label_clip(settings: Settings, data: bytes, limits: VideoLimits) -> VideoLabel | None:
    """The default classifier's label and probability for a clip's bytes (decoded under
    ingest's `limits`); None without one."""
    found = default_entry(settings)
    if found is None:
        return None
    name, entry = found
    model, saved = _load(settings.layout.resolve(entry["path"]), entry["sha256"], settings)
    frames = clip_frames(data, ClipSpec(frames=saved["frames"], size=saved["size"]), limits)
    best, score = classify(model, np.ascontiguousarray(frames))
    return VideoLabel(saved["classes"][best], score, name)
