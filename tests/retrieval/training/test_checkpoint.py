"""Checkpoint files: a round trip of training state, and damaged files refused."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lookalike.retrieval.errors import CheckpointCorrupt
from lookalike.retrieval.training.checkpoint import load_checkpoint, save_checkpoint


def test_state_round_trips_and_no_temporary_file_is_left(tmp_path: Path) -> None:
    state = {"epoch": 3, "model": {"w": torch.arange(6.0).view(2, 3)},
             "history": [{"epoch": 1, "loss": 0.5, "val_map": None, "seconds": 1.0}],
             "config": {"augment": ["mirror"], "lr": 1e-3}}
    path = tmp_path / "sub" / "run.pt"
    save_checkpoint(path, state)
    save_checkpoint(path, {**state, "epoch": 4})  # replaces the previous one
    loaded = load_checkpoint(path)
    assert loaded["epoch"] == 4 and loaded["history"] == state["history"]
    assert torch.equal(loaded["model"]["w"], state["model"]["w"])
    assert sorted(p.name for p in path.parent.iterdir()) == ["run.pt"]


def test_truncated_and_foreign_files_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "run.pt"
    save_checkpoint(path, {"epoch": 1, "model": {"w": torch.zeros(1000)}})
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(CheckpointCorrupt, match="run.pt cannot be read.*delete it"):
        load_checkpoint(path)
    torch.save([1, 2, 3], path)
    with pytest.raises(CheckpointCorrupt, match="does not hold a dict"):
        load_checkpoint(path)
