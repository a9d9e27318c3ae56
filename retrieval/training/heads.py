"""Projection heads: a small network on top of frozen embeddings, trained on labels."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from lookalike.retrieval.errors import HeadNotFound, WeightsMismatch
from lookalike.retrieval.models.weights import read_state_dict


class ProjectionHead(nn.Module):
    """Linear map, or one hidden ReLU layer, from `in_dim` to L2-normalised `out_dim` vectors."""

    def __init__(self, in_dim: int, out_dim: int, *, hidden: int | None = None) -> None:
        super().__init__()
        if min(in_dim, out_dim, hidden or 1) < 1:
            raise ValueError(f"dimensions must be positive: {in_dim}, {out_dim}, {hidden}")
        self.in_dim, self.out_dim, self.hidden = in_dim, out_dim, hidden
        if hidden is None:
            self.layers = nn.Sequential(nn.Linear(in_dim, out_dim))
        else:
            self.layers = nn.Sequential(
                nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, out_dim)
            )

    def forward(self, vectors: torch.Tensor) -> torch.Tensor:
        """(N,in_dim) vectors to (N,out_dim) unit-norm float vectors."""
        return nn.functional.normalize(self.layers(vectors), dim=1)


def load_head(path: Path, *, in_dim: int, out_dim: int, hidden: int | None) -> ProjectionHead:
    """A head of the given shape with the weights in `path`, loaded strictly, in eval mode."""
    if not path.is_file():
        raise HeadNotFound(f"projection head file {path} does not exist")
    head = ProjectionHead(in_dim, out_dim, hidden=hidden)
    state = read_state_dict(path)
    try:
        head.load_state_dict(state, strict=True)
    except RuntimeError as error:
        shape = f"in_dim={in_dim}, out_dim={out_dim}, hidden={hidden}"
        raise WeightsMismatch(
            f"projection head file {path} does not fit a head with {shape}: "
            f"{str(error).splitlines()[0]}"
        ) from error
    return head.eval()
