"""Trained weight files under LOOKALIKE_HOME/weights, content-addressed by sha256: the
fine-tuned networks and projection heads that spaces are built from."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import torch
from torch import nn

from lookalike.retrieval.errors import WeightsMismatch
from lookalike.retrieval.training.heads import ProjectionHead, load_head
from lookalike.services.catalog.models import Space
from lookalike.services.config import Settings
from lookalike.services.storage.files import read_verified, write_atomic


def store_state(module: nn.Module, *, prefix: str, settings: Settings) -> tuple[Path, str]:
    """Save the module's state dict as weights/<prefix>-<sha256>.pt; returns (path, sha256)."""
    buffer = io.BytesIO()
    torch.save({k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()},
               buffer)
    data = buffer.getvalue()
    sha = hashlib.sha256(data).hexdigest()
    return write_atomic(settings.layout.weights / f"{prefix}-{sha}.pt", data), sha


def space_head(space: Space, *, settings: Settings) -> ProjectionHead | None:
    """The projection head a space ends with (None without one), verified by its sha256."""
    head = space.options.head
    if head is None:
        return None
    path = settings.layout.resolve(head.file)
    read_verified(path, head.sha256, what="its head file", space=space.name,
                  error=WeightsMismatch)
    return load_head(path, in_dim=head.in_dim, out_dim=head.out_dim, hidden=head.hidden)
