"""Detector files: one trained by an older network (other layers, other names) is refused
with a message that says to train it again, not a raw state-dict error."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lookalike.retrieval.detection.networks import DetectorConfig
from lookalike.retrieval.training.checkpoint import load_checkpoint, save_checkpoint
from lookalike.services.detection.store import load_detector, new_network, save_detector
from lookalike.services.errors import InvalidRequest
from lookalike.services.storage.layout import DataLayout


def test_a_file_from_an_older_network_says_to_train_again(tmp_path: Path) -> None:
    torch.manual_seed(0)
    layout = DataLayout(tmp_path)
    config = DetectorConfig("fcos", ("bag", "shoe"), 64)
    path = save_detector(layout, "plain", new_network(config), config)
    model, loaded = load_detector(layout, "plain")
    assert loaded == config
    state = load_checkpoint(path)
    state["model"]["head.classification_head.conv.4.weight"] = torch.zeros(3)  # an old layer
    save_checkpoint(path, state)
    with pytest.raises(InvalidRequest, match="detect train --name plain"):
        load_detector(layout, "plain")
