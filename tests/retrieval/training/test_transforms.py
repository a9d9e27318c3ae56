"""Seeded training augmentation on a real photo: shape, pixel range, determinism."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps
from skimage import data

from lookalike.retrieval.embedding.embedder import image_to_pixels
from lookalike.retrieval.errors import InvalidTransformParameter, UnknownTransform
from lookalike.retrieval.training.augment import TRANSFORMS
from lookalike.retrieval.training.transforms import item_seed, training_transform

CLASSIC = ("mirror", "random_crop", "rotate", "shear", "local_warp", "colour_shift")


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    return Image.fromarray(data.chelsea())


def test_output_is_a_square_uint8_tensor_of_the_asked_size(photo: Image.Image) -> None:
    transform = training_transform(CLASSIC, size=64)
    for seed in range(5):
        pixels = transform(photo, seed)
        assert pixels.shape == (3, 64, 64) and pixels.dtype == torch.uint8
        assert 0 < int(pixels.float().mean()) < 255  # a picture, not a blank


def test_same_seed_same_pixels_other_seeds_differ(photo: Image.Image) -> None:
    transform = training_transform(CLASSIC, size=48)
    outputs = [transform(photo, seed) for seed in range(6)]
    assert torch.equal(training_transform(CLASSIC, size=48)(photo, 3), outputs[3])
    assert len({output.numpy().tobytes() for output in outputs}) > 1


def test_without_names_it_only_resizes(photo: Image.Image) -> None:
    assert torch.equal(training_transform((), size=40)(photo, 7), image_to_pixels(photo, size=40))


def test_a_certain_mirror_gives_the_mirrored_image(photo: Image.Image) -> None:
    flipped = training_transform(["mirror"], size=32, probability=1.0)(photo, 0)
    assert torch.equal(flipped, image_to_pixels(ImageOps.mirror(photo), size=32))


def test_each_transform_is_applied_about_half_the_time(photo: Image.Image) -> None:
    small = photo.resize((32, 32))
    plain = image_to_pixels(small, size=32)
    changed = [not torch.equal(training_transform(["mirror"], size=32)(small, s), plain)
               for s in range(200)]
    assert 0.35 < np.mean(changed) < 0.65


def test_unknown_names_and_bad_parameters_are_refused() -> None:
    with pytest.raises(UnknownTransform, match="unknown transform 'zoom'; available: mirror"):
        training_transform(["mirror", "zoom"], size=32)
    with pytest.raises(InvalidTransformParameter, match="probability"):
        training_transform(["mirror"], size=32, probability=1.5)
    assert set(CLASSIC) <= set(TRANSFORMS)


def test_item_seeds_differ_by_seed_epoch_and_index() -> None:
    seeds = {item_seed(s, e, i) for s in range(2) for e in range(3) for i in range(4)}
    assert len(seeds) == 24 and item_seed(1, 2, 3) == item_seed(1, 2, 3)
