"""Trained video classifiers on disk: content-addressed files (weights/video-<sha256>.pt) and
one JSON document (weights/video-classifiers.json) naming them and the default one, which
ingest applies to new videos. A file is read back only while it hashes to its sha256."""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from lookalike.retrieval.errors import WeightsMismatch
from lookalike.retrieval.video.classifiers import Conv3dNet, FrameAveraging
from lookalike.retrieval.video.synthetic import ClipSpec
from lookalike.retrieval.video.training import classify
from lookalike.services.config import Settings
from lookalike.services.storage.files import write_atomic
from lookalike.services.video.clips import clip_frames

FORMAT = "lookalike-video-classifier/1"
MODELS = ("conv3d", "frames")
REGISTRY = "video-classifiers.json"


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


def registry(settings: Settings) -> dict[str, Any]:
    """The classifiers' document: {"default": name | None, "classifiers": {name: entry}}."""
    path = settings.layout.weights / REGISTRY
    if not path.is_file():
        return {"default": None, "classifiers": {}}
    document: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return document


def register(settings: Settings, name: str, entry: dict[str, Any], *,
             make_default: bool) -> None:
    """Record classifier `name` (replacing an older one of that name), default if asked."""
    document = registry(settings)
    document["classifiers"][name] = entry
    if make_default:
        document["default"] = name
    data = json.dumps(document, indent=2, sort_keys=True).encode()
    write_atomic(settings.layout.weights / REGISTRY, data)


def default_entry(settings: Settings) -> tuple[str, dict[str, Any]] | None:
    """The default classifier's name and entry, or None when none was trained."""
    document = registry(settings)
    name = document.get("default")
    return (name, document["classifiers"][name]) if name else None


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


def label_clip(settings: Settings, data: bytes) -> VideoLabel | None:
    """The default classifier's label and probability for a clip's bytes; None without one."""
    found = default_entry(settings)
    if found is None:
        return None
    name, entry = found
    model, saved = _load(settings.layout.resolve(entry["path"]), entry["sha256"], settings)
    frames = clip_frames(data, ClipSpec(frames=saved["frames"], size=saved["size"]))
    best, score = classify(model, np.ascontiguousarray(frames))
    return VideoLabel(saved["classes"][best], score, name)
