"""The batch-hard miner: farthest positive and closest negative of every usable anchor."""

from __future__ import annotations

import torch

from lookalike.retrieval.training.mining import hardest_triplets, pairwise_distances


def test_pairwise_distances_are_euclidean() -> None:
    points = torch.tensor([[0.0, 0.0], [3.0, 4.0], [0.0, 1.0]])
    expected = torch.cdist(points, points)
    assert torch.allclose(pairwise_distances(points), expected, atol=1e-5)


def test_miner_picks_the_farthest_positive_and_the_closest_negative() -> None:
    # x positions:        0    1    4    2.5   6    9
    # labels:             0    0    0    1     1    2 (no positive: never an anchor)
    points = torch.tensor([[0.0], [1.0], [4.0], [2.5], [6.0], [9.0]])
    triplets = hardest_triplets(points, torch.tensor([0, 0, 0, 1, 1, 2]))
    assert triplets.anchors.tolist() == [0, 1, 2, 3, 4]
    assert triplets.positives.tolist() == [2, 2, 0, 4, 3]
    assert triplets.negatives.tolist() == [3, 3, 3, 1, 2]
    assert triplets.anchors.dtype == triplets.negatives.dtype == torch.int64
    assert len(triplets) == 5


def test_a_batch_of_one_class_has_no_triplet() -> None:
    triplets = hardest_triplets(torch.randn(4, 3), torch.zeros(4, dtype=torch.int64))
    assert len(triplets) == 0
