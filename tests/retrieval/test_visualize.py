"""The saliency map on a network that can only see the image's top-left quadrant: the map
lies where the network looks, is smoothed, and is scaled so that it shows (not only a few
peak pixels)."""

from __future__ import annotations

import torch
from torch import nn

from lookalike.retrieval.visualize import SALIENCY_BLUR, SALIENCY_PERCENTILE, saliency


class TopLeft(nn.Module):
    """A convolution on the top-left 16x16 pixels only: the rest cannot change its output."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.conv(pixels[:, :, :16, :16])


def test_saliency_lies_where_the_network_looks_and_is_scaled_to_show() -> None:
    torch.manual_seed(0)
    trunk = TopLeft().eval()
    inputs = torch.randn(1, 3, 32, 32)
    target = nn.functional.normalize(torch.randn(8), dim=0)
    strength = saliency(trunk, inputs, target, pooling="gap")
    assert strength.shape == (32, 32)
    assert strength.min() >= 0.0 and strength.max() == 1.0
    reach = 16 + SALIENCY_BLUR // 2  # the blur spreads the quadrant's gradient this far
    assert (strength[reach:, :] == 0).all() and (strength[:, reach:] == 0).all()
    assert (strength == 1.0).mean() >= 1 - SALIENCY_PERCENTILE / 100  # the top 1 % saturate
    assert (strength[:16, :16] > 0.1).mean() > 0.5  # smoothed: most of the quadrant shows
