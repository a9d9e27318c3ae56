"""Pooling a feature map into descriptors, checked against hand-computed examples."""

from __future__ import annotations

import math

import pytest
import torch

from lookalike.retrieval.embedding.pooling import POOLING_METHODS, pool, rmac_regions
from lookalike.retrieval.errors import UnknownPooling


@pytest.fixture
def feature_map() -> torch.Tensor:
    """One image, two channels of 2x2: [[1,2],[3,4]] and [[0,0],[0,8]]."""
    return torch.tensor([[[[1.0, 2.0], [3.0, 4.0]], [[0.0, 0.0], [0.0, 8.0]]]])


def test_gap_is_the_mean_of_each_channel(feature_map: torch.Tensor) -> None:
    assert pool(feature_map, method="gap").tolist() == [[2.5, 2.0]]


def test_mac_is_the_max_of_each_channel(feature_map: torch.Tensor) -> None:
    assert pool(feature_map, method="mac").tolist() == [[4.0, 8.0]]


def test_gem_is_the_cube_root_of_the_mean_cube(feature_map: torch.Tensor) -> None:
    pooled = pool(feature_map, method="gem", p=3.0)
    expected = torch.tensor([[25.0 ** (1 / 3), 128.0 ** (1 / 3)]])
    assert torch.allclose(pooled, expected, atol=1e-5)


def test_gem_with_p_one_equals_gap(feature_map: torch.Tensor) -> None:
    assert torch.allclose(pool(feature_map, method="gem", p=1.0), pool(feature_map), atol=1e-5)


def test_gem_clamps_negative_activations_instead_of_producing_nan() -> None:
    pooled = pool(torch.tensor([[[[-1.0, -2.0], [-3.0, 1.0]]]]), method="gem", p=3.0)
    assert torch.isfinite(pooled).all()
    assert pooled.item() == pytest.approx(0.25 ** (1 / 3), rel=1e-4)


def test_default_method_is_gap_and_batches_are_kept_apart() -> None:
    features = torch.stack([torch.full((3, 2, 2), 1.0), torch.full((3, 2, 2), 5.0)])
    assert pool(features).tolist() == [[1.0] * 3, [5.0] * 3]


def test_unknown_method_names_it_and_lists_the_allowed_ones(feature_map: torch.Tensor) -> None:
    with pytest.raises(UnknownPooling) as raised:
        pool(feature_map, method="vlad")
    message = str(raised.value)
    assert "'vlad'" in message
    assert all(method in message for method in POOLING_METHODS)
    assert isinstance(raised.value, ValueError)


def test_a_tensor_that_is_not_a_feature_map_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"\(2, 3\)"):
        pool(torch.zeros(2, 3))


def test_rmac_regions_of_a_4x4_map_are_one_whole_four_3x3_and_nine_2x2() -> None:
    regions = rmac_regions(4, 4)
    assert regions[0] == (0, 0, 4)
    assert sorted(regions[1:5]) == [(0, 0, 3), (0, 1, 3), (1, 0, 3), (1, 1, 3)]
    assert sorted(regions[5:]) == [(t, left, 2) for t in range(3) for left in range(3)]


def test_rmac_regions_cover_a_wide_map_with_more_positions_along_its_long_side() -> None:
    regions = rmac_regions(7, 10)
    assert {(t, left, s) for t, left, s in regions if s == 7} == {(0, 0, 7), (0, 3, 7)}
    assert all(t + s <= 7 and left + s <= 10 for t, left, s in regions)


def test_rmac_sums_the_normalised_region_maxima() -> None:
    """Channel 0 is all ones, channel 1 is one only at (0,0): 3 of the 14 regions contain that
    cell (MAC (1,1), normalised (1/sqrt2, 1/sqrt2)); the other 11 give (1, 0)."""
    features = torch.zeros(1, 2, 4, 4)
    features[0, 0] = 1.0
    features[0, 1, 0, 0] = 1.0
    pooled = pool(features, method="rmac")
    half = 1 / math.sqrt(2)
    assert torch.allclose(pooled, torch.tensor([[11 + 3 * half, 3 * half]]), atol=1e-5)


def test_rmac_of_a_1x1_map_is_the_normalised_vector_times_its_three_levels() -> None:
    pooled = pool(torch.tensor([[[[3.0]], [[4.0]]]]), method="rmac")
    assert torch.allclose(pooled, torch.tensor([[1.8, 2.4]]), atol=1e-5)
