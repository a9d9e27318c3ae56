"""Each training loss on a toy batch whose value is worked out by hand."""

from __future__ import annotations

import math

import pytest
import torch

from lookalike.retrieval.training.losses import (
    LOSSES,
    contrastive_loss,
    softmax_loss,
    triplet_loss,
)


def _points(*xy: tuple[float, float]) -> torch.Tensor:
    return torch.tensor(xy, dtype=torch.float32, requires_grad=True)


def test_the_three_losses_are_offered() -> None:
    assert LOSSES == ("softmax", "contrastive", "triplet")


def test_softmax_loss_is_the_mean_cross_entropy() -> None:
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    labels = torch.tensor([0, 2])
    first = math.log(1 + 2 * math.exp(-2))  # -log(e^2 / (e^2 + 1 + 1))
    second = math.log(math.e + 2)  # -log(e^0 / (1 + e + 1))
    assert softmax_loss(logits, labels).item() == pytest.approx((first + second) / 2, rel=1e-6)


def test_contrastive_loss_averages_positive_and_negative_pairs_separately() -> None:
    # pairs: (0,1) positive at d=0.5 -> 0.25; (0,2) negative at d=0.6 -> (0.7-0.6)^2 = 0.01;
    # (1,2) negative at d=0.5 -> (0.7-0.5)^2 = 0.04. Loss = 0.25 + (0.01 + 0.04) / 2.
    embeddings = _points((0.0, 0.0), (0.3, 0.4), (0.6, 0.0))
    loss = contrastive_loss(embeddings, torch.tensor([0, 0, 1]), margin=0.7)
    assert loss.item() == pytest.approx(0.275, abs=1e-6)
    loss.backward()
    assert embeddings.grad is not None and torch.isfinite(embeddings.grad).all()


def test_contrastive_negatives_beyond_the_margin_cost_nothing() -> None:
    embeddings = _points((0.0, 0.0), (0.0, 0.1), (1.0, 0.0), (1.0, 0.1))
    loss = contrastive_loss(embeddings, torch.tensor([0, 0, 1, 1]), margin=0.7)
    assert loss.item() == pytest.approx(0.01, abs=1e-6)  # two positives at d=0.1, no negative


def test_triplet_loss_uses_each_anchors_hardest_pair() -> None:
    # On a line at x = 0, 1, 1.5, 3 (labels 0, 0, 1, 1) and 10 (label 2, no positive):
    # anchor 0: relu(1 - 1.5 + 0.2) = 0; anchor 1: relu(1 - 0.5 + 0.2) = 0.7;
    # anchor 2: relu(1.5 - 0.5 + 0.2) = 1.2; anchor 3: relu(1.5 - 2 + 0.2) = 0; 4 is no anchor.
    embeddings = _points((0.0, 0.0), (1.0, 0.0), (1.5, 0.0), (3.0, 0.0), (10.0, 0.0))
    loss = triplet_loss(embeddings, torch.tensor([0, 0, 1, 1, 2]), margin=0.2)
    assert loss.item() == pytest.approx((0.7 + 1.2) / 4, abs=1e-6)
    loss.backward()
    assert embeddings.grad is not None
    assert embeddings.grad[4].abs().sum() == 0  # never mined, so no gradient


def test_triplet_loss_without_any_triplet_is_zero_and_differentiable() -> None:
    embeddings = _points((0.0, 0.0), (1.0, 0.0))
    loss = triplet_loss(embeddings, torch.tensor([0, 1]))
    assert loss.item() == 0.0
    loss.backward()
    assert embeddings.grad is not None


def test_identical_embeddings_give_finite_gradients() -> None:
    embeddings = _points((0.5, 0.5), (0.5, 0.5), (0.5, 0.5))
    labels = torch.tensor([0, 0, 1])
    (contrastive_loss(embeddings, labels) + triplet_loss(embeddings, labels)).backward()
    assert embeddings.grad is not None and torch.isfinite(embeddings.grad).all()
