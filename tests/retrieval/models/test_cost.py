"""Multiply-adds counted by torch's FlopCounterMode match hand-computed values."""

from __future__ import annotations

from lookalike.retrieval.models.cost import layer_multiply_adds, multiply_adds, parameter_count
from lookalike.retrieval.models.registry import get_backbone


def _trunk(name: str):
    spec = get_backbone(name)
    return spec.trunk(spec.builder()), spec.weights.input_size


def test_lenet5_first_convolution_costs_what_the_book_says() -> None:
    trunk, size = _trunk("lenet5")
    layers = layer_multiply_adds(trunk, input_size=size)
    # 6 filters of 1x5x5 at each of 28x28 output positions
    assert layers["Sequential.0.1"] == 6 * 1 * 5 * 5 * 28 * 28
    # conv2: 16 filters of 6x5x5 on 10x10; then 400->120 and 120->84
    assert layers["Global"] == 117_600 + 16 * 6 * 25 * 100 + 400 * 120 + 120 * 84
    assert multiply_adds(trunk, input_size=size) == layers["Global"]


def test_zfnet_first_convolution_is_7x7_stride_2() -> None:
    trunk, size = _trunk("zfnet")
    # 96 filters of 3x7x7 on a (224 + 2 - 7) // 2 + 1 = 110 square map
    assert layer_multiply_adds(trunk, input_size=size)["Sequential.0"] == 96 * 3 * 49 * 110 * 110
    assert parameter_count(trunk) == sum(p.numel() for p in trunk.parameters())
