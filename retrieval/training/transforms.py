"""Seeded training augmentation: the named transforms of `retrieval.augment`, then a resize."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from PIL import Image

from lookalike.retrieval.embedding.embedder import image_to_pixels
from lookalike.retrieval.errors import InvalidTransformParameter, UnknownTransform
from lookalike.retrieval.training.augment import TRANSFORMS

DEFAULT_PROBABILITY = 0.5


class _Augmentation:
    """Picklable (image, seed) -> (3,size,size) uint8 transform (DataLoader workers need that)."""

    def __init__(self, names: tuple[str, ...], size: int, probability: float) -> None:
        self.names = names
        self.size = size
        self.probability = probability

    def __call__(self, image: Image.Image, seed: int) -> torch.Tensor:
        """Each named transform, in order, applied with `probability`, all drawn from `seed`."""
        rng = np.random.default_rng(seed)
        for name in self.names:
            if rng.random() < self.probability:
                image = TRANSFORMS[name](image, rng)
        return image_to_pixels(image, size=self.size)


def check_transform_names(names: Sequence[str]) -> tuple[str, ...]:
    """`names` as a tuple; UnknownTransform names the first unknown one and lists the others."""
    unknown = [name for name in names if name not in TRANSFORMS]
    if unknown:
        raise UnknownTransform(
            f"unknown transform '{unknown[0]}'; available: {', '.join(TRANSFORMS)}"
        )
    return tuple(names)


def training_transform(
    names: Sequence[str], *, size: int, probability: float = DEFAULT_PROBABILITY
) -> Callable[[Image.Image, int], torch.Tensor]:
    """(image, seed) -> (3,size,size) uint8 pixels: each transform of `names` (from
    `augment.TRANSFORMS`) is applied in order with `probability`; the same seed gives the same
    pixels. With no names it only resizes."""
    if size < 1:
        raise InvalidTransformParameter(f"size must be at least 1 pixel, got {size}")
    if not 0.0 <= probability <= 1.0:
        raise InvalidTransformParameter(f"probability must lie in 0..1, got {probability}")
    return _Augmentation(check_transform_names(names), size, probability)


def item_seed(seed: int, epoch: int, index: int) -> int:
    """The augmentation seed of item `index` in `epoch`: a function of the three, nothing else."""
    return int(np.random.SeedSequence([seed, epoch, index]).generate_state(1)[0])
