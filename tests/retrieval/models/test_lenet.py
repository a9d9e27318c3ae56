"""LeNet-5 in the backbone registry: shapes, grey input, and no pretrained weights."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lookalike.retrieval.embedding.pooling import POOLING_METHODS, pool
from lookalike.retrieval.errors import WeightsNotFound
from lookalike.retrieval.models.registry import (
    get_backbone,
    install_weights,
    load_feature_extractor,
    resolve_weights,
    weight_candidates,
)

LENET = get_backbone("lenet5")


def test_registry_entry_describes_a_32_pixel_84_dimension_backbone() -> None:
    assert LENET.dim == 84 and LENET.weights.input_size == 32
    assert not LENET.weights.pretrained


def test_trunk_maps_3_channel_input_to_an_84_channel_one_pixel_map() -> None:
    trunk = load_feature_extractor(LENET, weights=None)
    features = trunk(torch.randn(5, 3, 32, 32))
    assert features.shape == (5, 84, 1, 1)
    for method in POOLING_METHODS:
        assert pool(features, method=method).shape == (5, 84)


def test_colour_input_is_seen_as_grey() -> None:
    trunk = load_feature_extractor(LENET, weights=None)
    grey = torch.rand(2, 1, 32, 32).expand(-1, 3, -1, -1)
    tinted = grey + torch.tensor([0.2, -0.1, -0.1]).view(1, 3, 1, 1)  # same channel mean
    assert torch.allclose(trunk(grey), trunk(tinted), atol=1e-6)


def test_the_whole_network_classifies_ten_classes() -> None:
    model = LENET.builder()
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_no_pretrained_weights_is_an_error_that_says_to_train_it(tmp_path: Path) -> None:
    with pytest.raises(WeightsNotFound) as raised:
        resolve_weights(LENET, explicit=None, torch_home=tmp_path)
    message = str(raised.value)
    assert "backbone 'lenet5' has no pretrained weights" in message
    assert "lookalike finetune --backbone lenet5 --weights none" in message
    assert "--weights FILE" in message
    assert weight_candidates(LENET, explicit=None, torch_home=tmp_path) == []


def test_a_trained_weight_file_resolves_and_loads(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = LENET.builder()
    torch.save(model.state_dict(), tmp_path / "lenet5-trained.pth")
    path = resolve_weights(LENET, explicit=tmp_path / "lenet5-trained.pth", torch_home=tmp_path)
    trunk = load_feature_extractor(LENET, weights=path)
    images = torch.randn(2, 3, 32, 32)
    assert torch.equal(trunk(images), model.features(images))
    with pytest.raises(WeightsNotFound, match="no pretrained weights"):
        install_weights(path, spec=LENET, torch_home=tmp_path)
