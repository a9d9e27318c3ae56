"""Two copy-detection views per image for self-supervised training (SSCD): each view is drawn
from its own seed, a function of (run seed, epoch, item index, view), so the two views of one
image differ and a resumed run draws the same views as one that never stopped."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from lookalike.retrieval.embedding.embedder import image_to_pixels
from lookalike.retrieval.errors import InvalidTrainingConfig
from lookalike.retrieval.training.copyedits import CopyAugmenter

__all__ = ["VIEWS", "copy_view", "two_views", "view_seed"]

VIEWS = 2


def view_seed(seed: int, epoch: int, index: int, view: int) -> int:
    """The seed of view `view` of item `index` in `epoch`: a function of the four only."""
    return int(np.random.SeedSequence([seed, epoch, index, view]).generate_state(1)[0])


def copy_view(pixels: Tensor, augmenter: CopyAugmenter, seed: int) -> Tensor:
    """One (3,S,S) uint8 item through the copy edits seeded by `seed`, back at (3,S,S)."""
    if pixels.dim() != 3 or pixels.shape[0] != 3 or pixels.dtype != torch.uint8:
        raise InvalidTrainingConfig(f"copy views need (3,S,S) uint8 image items, got "
                                    f"{tuple(pixels.shape)} {pixels.dtype}")
    image = Image.fromarray(pixels.permute(1, 2, 0).numpy())
    return image_to_pixels(augmenter(image, seed), size=int(pixels.shape[-1]))


def two_views(items: Sequence[Tensor], indices: Sequence[int], *, augmenter: CopyAugmenter,
              seed: int, epoch: int) -> tuple[Tensor, Tensor]:
    """(first views, second views) of a batch, each (N,3,S,S) uint8, every view seeded apart."""
    views = [torch.stack([copy_view(pixels, augmenter, view_seed(seed, epoch, index, view))
                          for pixels, index in zip(items, indices, strict=True)])
             for view in range(VIEWS)]
    return views[0], views[1]
