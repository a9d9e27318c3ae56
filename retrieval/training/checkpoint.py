"""Training checkpoints: written atomically, read back whole or refused."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch

from lookalike.retrieval.atomic import write_atomic
from lookalike.retrieval.errors import CheckpointCorrupt


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write `state` (tensors, numbers, strings, lists, dicts) so a crash leaves the old file."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    write_atomic(path, lambda out: out.write(buffer.getbuffer()))


def load_checkpoint(path: Path) -> dict[str, Any]:
    """The state saved at `path`, loaded safely (weights_only); CheckpointCorrupt otherwise."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch.load fails in many ways on a damaged file
        raise CheckpointCorrupt(
            f"checkpoint {path} cannot be read ({type(error).__name__}: {error}); delete it "
            "to train from the start"
        ) from error
    if not isinstance(state, dict):
        raise CheckpointCorrupt(f"checkpoint {path} does not hold a dict; delete it")
    return state
