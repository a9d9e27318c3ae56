"""Copy-detection edits on the astronaut photo: contracts, determinism, strengths, the plan."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata

from lookalike.retrieval.errors import InvalidTransformParameter, UnknownTransform
from lookalike.retrieval.training.copyedits import (
    COPY_EDITS,
    DEFAULT_PLAN,
    CopyAugmenter,
    Edit,
    apply_edit,
    augmentation_grid,
    heavy_crop,
    parse_plan,
)

SAME_SIZE = sorted(set(COPY_EDITS) - {"heavy_crop", "downscale", "padding", "rotate90"})


@pytest.fixture(scope="module")
def astronaut() -> Image.Image:
    """The astronaut photo at 160x128 (not square, so width/height mix-ups show)."""
    return Image.fromarray(skdata.astronaut()).resize((160, 128), Image.Resampling.BILINEAR)


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


@pytest.mark.parametrize("name", sorted(COPY_EDITS))
def test_every_edit_changes_the_image_and_keeps_rgb(name: str, astronaut: Image.Image) -> None:
    out = apply_edit(astronaut, name, 3, strength=0.8)
    assert out.mode == "RGB" and out is not astronaut
    if name in SAME_SIZE:
        assert out.size == astronaut.size
    assert out.size != astronaut.size or not np.array_equal(pixels(out), pixels(astronaut))


@pytest.mark.parametrize("name", sorted(COPY_EDITS))
def test_same_seed_same_edit(name: str, astronaut: Image.Image) -> None:
    first = apply_edit(astronaut, name, 11, strength=0.6)
    second = apply_edit(astronaut, name, 11, strength=0.6)
    np.testing.assert_array_equal(pixels(first), pixels(second))


def test_heavy_crop_at_full_strength_keeps_ten_to_twenty_percent(astronaut: Image.Image) -> None:
    gen = np.random.default_rng(0)
    for _ in range(20):
        out = heavy_crop(astronaut, gen, 1.0)
        area = out.width * out.height / (astronaut.width * astronaut.height)
        assert 0.07 <= area <= 0.25


def test_stronger_jpeg_and_noise_move_pixels_further(astronaut: Image.Image) -> None:
    for name in ("jpeg", "noise", "blur"):
        weak = np.abs(pixels(apply_edit(astronaut, name, 5, 0.1)) - pixels(astronaut)).mean()
        strong = np.abs(pixels(apply_edit(astronaut, name, 5, 1.0)) - pixels(astronaut)).mean()
        assert strong > weak, name


def test_paste_onto_image_uses_the_background(astronaut: Image.Image) -> None:
    background = Image.new("RGB", (50, 50), (0, 255, 0))
    out = apply_edit(astronaut, "paste_onto_image", 2, strength=1.0, background=background)
    green = (pixels(out) == (0, 255, 0)).all(axis=2).mean()
    assert 0.3 < green < 0.95


def test_augmenter_is_seeded_and_varies(astronaut: Image.Image) -> None:
    augmenter = CopyAugmenter()
    first, names = augmenter.view(astronaut, 42)
    again, names_again = augmenter.view(astronaut, 42)
    other = augmenter(astronaut, 43)
    np.testing.assert_array_equal(pixels(first), pixels(again))
    assert names == names_again and set(names) <= set(COPY_EDITS)
    assert first.size != other.size or not np.array_equal(pixels(first), pixels(other))


def test_augmenter_applies_edits_about_as_often_as_planned(astronaut: Image.Image) -> None:
    small = astronaut.resize((40, 32))
    augmenter = CopyAugmenter()
    gen = np.random.default_rng(0)
    counts = dict.fromkeys(COPY_EDITS, 0)
    for _ in range(300):
        for name in augmenter.view(small, gen)[1]:
            counts[name] += 1
    for edit in DEFAULT_PLAN:
        assert abs(counts[edit.name] / 300 - edit.probability) < 0.08, edit.name


def test_plan_parsing_and_errors() -> None:
    assert parse_plan(["blur", "jpeg:0.5:1"]) == (Edit("blur", 1.0, 0.7), Edit("jpeg", 0.5, 1.0))
    with pytest.raises(UnknownTransform, match="available: heavy_crop"):
        parse_plan(["sepia"])
    with pytest.raises(InvalidTransformParameter, match="strength 2.0"):
        parse_plan(["blur:1:2"])
    with pytest.raises(InvalidTransformParameter, match="name:probability:strength"):
        parse_plan(["blur:1"])


def test_grid_has_a_row_per_image_and_a_column_per_view(astronaut: Image.Image) -> None:
    grid = augmentation_grid([astronaut, astronaut.rotate(90)], CopyAugmenter(), seed=1,
                             views=3, tile=32)
    assert grid.width > grid.height and grid.width > 4 * 32 and grid.height > 2 * 32
