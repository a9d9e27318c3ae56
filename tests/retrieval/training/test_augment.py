"""Near-duplicate transforms on the astronaut photo: contracts, determinism and their effects."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata

from lookalike.retrieval.errors import InvalidTransformParameter, UnknownTransform
from lookalike.retrieval.training.augment import (
    TRANSFORMS,
    colour_shift,
    downscale,
    jpeg,
    local_warp,
    mirror,
    near_duplicate_variants,
    random_crop,
    rotate,
)

# Transforms that keep the input size; random_crop and downscale shrink it.
SAME_SIZE = sorted(set(TRANSFORMS) - {"random_crop", "downscale"})


@pytest.fixture(scope="module")
def astronaut() -> Image.Image:
    """The astronaut photo at 160x128 (not square, so width/height mix-ups show)."""
    return Image.fromarray(skdata.astronaut()).resize((160, 128), Image.Resampling.BILINEAR)


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


@pytest.mark.parametrize("name", sorted(TRANSFORMS))
def test_every_transform_returns_a_new_rgb_image(name: str, astronaut: Image.Image) -> None:
    out = TRANSFORMS[name](astronaut, np.random.default_rng(0))
    assert out.mode == "RGB"
    assert out is not astronaut
    assert np.asarray(out).dtype == np.uint8
    if name in SAME_SIZE:
        assert out.size == astronaut.size
    assert not np.array_equal(pixels(out), pixels(astronaut))


@pytest.mark.parametrize("name", sorted(TRANSFORMS))
def test_same_seed_same_image(name: str, astronaut: Image.Image) -> None:
    first = TRANSFORMS[name](astronaut, np.random.default_rng(7))
    second = TRANSFORMS[name](astronaut, np.random.default_rng(7))
    np.testing.assert_array_equal(pixels(first), pixels(second))


@pytest.mark.parametrize("name", sorted(set(TRANSFORMS) - {"mirror", "downscale"}))
def test_another_seed_another_image(name: str, astronaut: Image.Image) -> None:
    first = TRANSFORMS[name](astronaut, 1)
    second = TRANSFORMS[name](astronaut, 2)
    assert first.size != second.size or not np.array_equal(pixels(first), pixels(second))


def test_mirror_flips_and_twice_is_identity(astronaut: Image.Image) -> None:
    flipped = mirror(astronaut)
    np.testing.assert_array_equal(pixels(flipped), pixels(astronaut)[:, ::-1])
    np.testing.assert_array_equal(pixels(mirror(flipped)), pixels(astronaut))


def test_random_crop_is_a_window_of_the_original(astronaut: Image.Image) -> None:
    crop = random_crop(astronaut, 3, min_frac=0.5, max_frac=0.9)
    assert 80 <= crop.width <= 144 and 64 <= crop.height <= 116
    source = pixels(astronaut)
    found = [
        (top, left)
        for top in range(128 - crop.height + 1)
        for left in range(160 - crop.width + 1)
        if np.array_equal(source[top : top + crop.height, left : left + crop.width], pixels(crop))
    ]
    assert len(found) == 1


def test_small_rotation_and_warp_stay_close_to_the_original(astronaut: Image.Image) -> None:
    source = pixels(astronaut)
    rotated = pixels(rotate(astronaut, 0, max_degrees=2))
    warped = pixels(local_warp(astronaut, 0, strength=0.01))
    other = pixels(Image.fromarray(skdata.coffee()).resize((160, 128)))
    for near in (rotated, warped):
        assert np.abs(near - source).mean() < 0.3 * np.abs(other - source).mean()
    # The warp keeps the border in place: corner pixels are unchanged.
    assert np.abs(warped[0, 0] - source[0, 0]).max() <= 2


def test_colour_shift_keeps_layout_and_changes_colour(astronaut: Image.Image) -> None:
    shifted = pixels(colour_shift(astronaut, 4))
    source = pixels(astronaut)
    assert np.abs(shifted.mean(axis=(0, 1)) - source.mean(axis=(0, 1))).max() > 2
    correlation = np.corrcoef(shifted.mean(axis=2).ravel(), source.mean(axis=2).ravel())[0, 1]
    assert correlation > 0.8


def test_jpeg_and_downscale(astronaut: Image.Image) -> None:
    compressed = jpeg(astronaut, 0, min_quality=15, max_quality=15)
    assert compressed.size == astronaut.size
    assert 0 < np.abs(pixels(compressed) - pixels(astronaut)).mean() < 20
    assert downscale(astronaut).size == (40, 32)
    assert downscale(astronaut, factor=1000).size == (1, 1)


def test_near_duplicate_variants_are_named_and_reproducible(astronaut: Image.Image) -> None:
    variants = near_duplicate_variants(astronaut, 5)
    assert [name for name, _ in variants] == list(TRANSFORMS)
    again = near_duplicate_variants(astronaut, np.random.default_rng(5))
    for (_, first), (_, second) in zip(variants, again, strict=True):
        np.testing.assert_array_equal(pixels(first), pixels(second))
    chosen = near_duplicate_variants(astronaut, 5, names=["blur", "mirror"])
    assert [name for name, _ in chosen] == ["blur", "mirror"]


def test_bad_names_and_parameters_are_explained(astronaut: Image.Image) -> None:
    with pytest.raises(UnknownTransform, match="unknown transform 'sepia'; available: mirror"):
        near_duplicate_variants(astronaut, 0, names=["sepia"])
    with pytest.raises(InvalidTransformParameter, match="crop fraction range 0.9..0.5"):
        random_crop(astronaut, 0, min_frac=0.9, max_frac=0.5)
    with pytest.raises(InvalidTransformParameter, match="downscale factor 0"):
        downscale(astronaut, factor=0)
    with pytest.raises(InvalidTransformParameter, match="JPEG quality range 15..100"):
        jpeg(astronaut, 0, max_quality=100)
