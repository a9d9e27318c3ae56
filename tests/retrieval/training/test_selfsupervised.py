"""The self-supervised copy losses on batches whose values are worked out by hand."""

from __future__ import annotations

import math

import pytest
import torch

from lookalike.retrieval.errors import InvalidTrainingConfig
from lookalike.retrieval.training.selfsupervised import info_nce_loss, koleo_loss, sscd_loss


def test_info_nce_by_hand() -> None:
    # two images, views a0=b0=(1,0), a1=b1=(0,1); T=1: each view sees its twin at cos 1
    # and the other image's two views at cos 0: loss = -log(e / (e + 2)).
    first = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    loss = info_nce_loss(first, first.clone(), temperature=1.0)
    assert loss.item() == pytest.approx(-math.log(math.e / (math.e + 2)), rel=1e-6)


def test_info_nce_prefers_matching_views() -> None:
    gen = torch.Generator().manual_seed(0)
    first = torch.randn(16, 8, generator=gen)
    matched = info_nce_loss(first, first + 0.01 * torch.randn(16, 8, generator=gen))
    shuffled = info_nce_loss(first, first[torch.randperm(16, generator=gen)])
    assert matched.item() < 0.1 < shuffled.item()


def test_koleo_by_hand_and_its_gradient_spreads_points() -> None:
    # unit vectors at 0, 90 and 180 degrees: nearest distances sqrt(2), sqrt(2), sqrt(2)
    points = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    assert koleo_loss(points).item() == pytest.approx(-math.log(math.sqrt(2)), rel=1e-5)
    close = torch.tensor([[1.0, 0.0], [1.0, 0.1], [0.0, 1.0]], requires_grad=True)
    before = koleo_loss(close)
    before.backward()
    assert close.grad is not None
    stepped = (close - 0.05 * close.grad).detach()
    assert koleo_loss(stepped).item() < before.item()
    assert before.item() > koleo_loss(points).item()


def test_sscd_adds_weighted_koleo_and_checks_shapes() -> None:
    first = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    second = torch.tensor([[0.9, 0.1], [0.1, 0.9]])
    both = torch.cat([first, second])
    expected = info_nce_loss(first, second) + 0.5 * koleo_loss(both)
    assert sscd_loss(first, second, koleo_weight=0.5).item() == pytest.approx(expected.item())
    with pytest.raises(InvalidTrainingConfig, match="one shape"):
        info_nce_loss(first, second[:1])
    with pytest.raises(InvalidTrainingConfig, match="temperature"):
        info_nce_loss(first, second, temperature=0.0)
