"""Trained detectors under LOOKALIKE_HOME/detectors: one file per name, tensors + config.

A file holds the whole network (trunk included) and what it needs to run: architecture,
classes and input side. Files are written atomically; a name is a plain word."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from torch import nn

from lookalike.retrieval.detection.networks import (
    DetectorConfig,
    Localizer,
    build_detector,
    detection_trunk,
)
from lookalike.retrieval.training.checkpoint import load_checkpoint, save_checkpoint
from lookalike.services.errors import DetectorNotFound, InvalidRequest
from lookalike.services.storage.layout import DataLayout

NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
LOCALIZER = "localizer"  # the architecture name of a one-object localization head


def check_name(name: str) -> str:
    """A detector name: lower-case letters, digits, '-' and '_' (it names a file)."""
    if not NAME.match(name) or name in ("user", "faces"):
        raise InvalidRequest(f"detector name {name!r} is not allowed: use 1-63 lower-case "
                             "letters, digits, '-' or '_' ('user' is kept for people's boxes, "
                             "'faces' for the pretrained face detector)")
    return name


def detector_path(layout: DataLayout, name: str) -> Path:
    return layout.detectors / f"{check_name(name)}.pt"


def save_detector(layout: DataLayout, name: str, model: nn.Module, config: DetectorConfig,
                  figures: dict[str, float] | None = None) -> Path:
    """Write the network and its config as `<name>.pt` (atomically); returns the file."""
    path = detector_path(layout, name)
    save_checkpoint(path, {"architecture": config.architecture, "classes": list(config.classes),
                           "size": config.size, "score_threshold": config.score_threshold,
                           "figures": figures or {}, "model": model.state_dict()})
    return path


def load_detector(layout: DataLayout, name: str) -> tuple[nn.Module, DetectorConfig]:
    """The trained network called `name` in eval mode, with its config."""
    path = detector_path(layout, name)
    if not path.is_file():
        raise DetectorNotFound(f"no detector '{name}' in {layout.detectors}; train one with "
                               f"`lookalike detect train --name {name}` (available: "
                               f"{', '.join(list_detectors(layout)) or 'none'})")
    state = load_checkpoint(path)
    config = DetectorConfig(str(state["architecture"]), tuple(state["classes"]),
                            int(state["size"]), float(state["score_threshold"]))
    model = new_network(config)
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as error:  # a file from before the networks changed (issue 15)
        raise InvalidRequest(f"detector '{name}' was trained by an older version of its "
                             f"network ({config.architecture}) and no longer loads; train it "
                             f"again with `lookalike detect train --name {name}`") from error
    return model.eval(), config


def new_network(config: DetectorConfig, trunk_weights: Path | None = None) -> nn.Module:
    """An untrained detector or localizer for `config` (trunk from `trunk_weights`)."""
    if config.architecture == LOCALIZER:
        return Localizer(detection_trunk(trunk_weights), len(config.classes))
    return build_detector(config, trunk_weights=trunk_weights)


def detector_figures(layout: DataLayout, name: str) -> dict[str, Any]:
    """The held-out figures recorded in a detector file when it was published."""
    return dict(load_checkpoint(detector_path(layout, name)).get("figures", {}))


def list_detectors(layout: DataLayout) -> list[str]:
    """Names of the trained detectors, sorted."""
    folder = layout.detectors
    return sorted(p.stem for p in folder.glob("*.pt")) if folder.is_dir() else []
