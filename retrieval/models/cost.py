"""What a network costs: parameters and multiply-adds per image, the latter counted by
`torch.utils.flop_counter.FlopCounterMode` on a real forward pass (not by hand)."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def parameter_count(model: nn.Module) -> int:
    """Elements in every parameter of `model`."""
    return sum(parameter.numel() for parameter in model.parameters())


def _counted(model: nn.Module, input_size: int) -> FlopCounterMode:
    """A FlopCounterMode that has seen one (1,3,S,S) forward pass of `model` in eval mode."""
    counter = FlopCounterMode(display=False)
    was_training = model.training
    model.eval()
    with counter, torch.no_grad():
        model(torch.zeros(1, 3, input_size, input_size))
    model.train(was_training)
    return counter


def multiply_adds(model: nn.Module, *, input_size: int) -> int:
    """Multiply-adds of one forward pass on one input_size x input_size image (the counter
    reports FLOPs, two per multiply-add, for convolutions and matrix products)."""
    return _counted(model, input_size).get_total_flops() // 2


def layer_multiply_adds(model: nn.Module, *, input_size: int) -> dict[str, int]:
    """Multiply-adds per module path as FlopCounterMode names them ("Global" is the total;
    a parent's figure includes its children)."""
    counts = _counted(model, input_size).get_flop_counts()
    return {name: sum(per_op.values()) // 2 for name, per_op in counts.items()}
