"""Similarity maps: each location's share of the descriptor similarity, and the heat overlay."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from lookalike.retrieval.embedding.pooling import pool
from lookalike.retrieval.errors import UnknownPooling
from lookalike.retrieval.explain import heat_overlay, similarity_maps


def feature_maps(seed: int, shape: tuple[int, int, int]) -> torch.Tensor:
    """Non-negative maps like a ReLU backbone's, seeded."""
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=generator) ** 2


def cosine(a: torch.Tensor, b: torch.Tensor, method: str) -> float:
    pa, pb = pool(a[None], method=method)[0], pool(b[None], method=method)[0]
    return float(torch.nn.functional.cosine_similarity(pa, pb, dim=0))


@pytest.mark.parametrize("method", ["gap", "mac"])
def test_each_map_adds_up_to_the_cosine_similarity(method: str) -> None:
    query, result = feature_maps(0, (64, 7, 7)), feature_maps(1, (64, 5, 9))
    maps = similarity_maps(query, result, pooling=method)
    expected = cosine(query, result, method)
    assert maps.exact and maps.score == pytest.approx(expected, abs=1e-5)
    assert maps.query.shape == (7, 7) and maps.result.shape == (5, 9)
    assert maps.query.sum() == pytest.approx(expected, abs=1e-4)
    assert maps.result.sum() == pytest.approx(expected, abs=1e-4)


def test_the_region_both_images_share_gets_the_most_credit() -> None:
    query, result = torch.zeros(16, 6, 6), torch.zeros(16, 6, 6)
    query[3, 1, 4] = 5.0  # channel 3 fires at one place in each image...
    result[3, 4, 0] = 5.0
    query[7, 2, 2] = 1.0  # ...and channel 7 only in the query
    maps = similarity_maps(query, result, pooling="gap")
    assert np.unravel_index(maps.query.argmax(), maps.query.shape) == (1, 4)
    assert np.unravel_index(maps.result.argmax(), maps.result.shape) == (4, 0)
    assert maps.query[2, 2] == 0.0


def test_gem_is_credited_like_gap_and_says_it_is_approximate() -> None:
    maps = similarity_maps(feature_maps(2, (8, 3, 3)), feature_maps(3, (8, 3, 3)), pooling="gem")
    assert not maps.exact


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(UnknownPooling, match="allowed: gap"):
        similarity_maps(torch.ones(4, 2, 2), torch.ones(4, 2, 2), pooling="avg")
    with pytest.raises(ValueError, match="same C"):
        similarity_maps(torch.ones(4, 2, 2), torch.ones(5, 2, 2), pooling="gap")


def test_overlay_keeps_the_image_size_and_heats_the_strong_region() -> None:
    image = Image.new("RGB", (120, 80), (128, 128, 128))
    grid = np.zeros((4, 6), np.float32)
    grid[0, 5] = 1.0
    overlay = np.asarray(heat_overlay(image, grid, low=0.0, high=1.0), dtype=np.int16)
    assert overlay.shape == (80, 120, 3)
    assert (overlay[70, 10] == 128).all()  # no contribution: the image unchanged
    hot = overlay[5, 115]
    assert hot[0] > 180 and hot[2] < 100  # full contribution: the warm end of the ramp
