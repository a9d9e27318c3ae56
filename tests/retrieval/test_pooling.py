"""Pooling a feature map into descriptors, checked against hand-computed 2x2 examples."""

from __future__ import annotations

import pytest
import torch

from lookalike.retrieval.errors import UnknownPooling
from lookalike.retrieval.pooling import POOLING_METHODS, pool


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
        pool(feature_map, method="rmac")
    message = str(raised.value)
    assert "'rmac'" in message
    assert all(method in message for method in POOLING_METHODS)
    assert isinstance(raised.value, ValueError)


def test_a_tensor_that_is_not_a_feature_map_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"\(2, 3\)"):
        pool(torch.zeros(2, 3))
