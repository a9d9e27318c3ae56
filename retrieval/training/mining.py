"""Hard-negative mining inside a batch: the triplets that batch-hard losses learn from."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class Triplets:
    """Row indices (int64) into a batch: anchors[i] with positives[i] and negatives[i]."""

    anchors: Tensor
    positives: Tensor
    negatives: Tensor

    def __len__(self) -> int:
        return len(self.anchors)


def pairwise_distances(embeddings: Tensor) -> Tensor:
    """(N,N) Euclidean distances; the square root is kept off zero so gradients stay finite."""
    squared = embeddings.pow(2).sum(dim=1)
    gram = embeddings @ embeddings.T
    return (squared[:, None] + squared[None, :] - 2 * gram).clamp_min(1e-12).sqrt()


def hardest_triplets(embeddings: Tensor, labels: Tensor) -> Triplets:
    """For every anchor with a positive and a negative in the batch: its farthest positive and
    its closest negative (Hermans et al., batch-hard). Ties go to the lowest index."""
    with torch.no_grad():
        distances = pairwise_distances(embeddings.detach().float())
        same = labels[:, None] == labels[None, :]
        positive = same & ~torch.eye(len(labels), dtype=torch.bool, device=labels.device)
        negative = ~same
        anchors = torch.nonzero(positive.any(dim=1) & negative.any(dim=1)).flatten()
        far = distances.masked_fill(~positive, -1.0).argmax(dim=1)
        near = distances.masked_fill(~negative, torch.inf).argmin(dim=1)
    return Triplets(anchors, far[anchors], near[anchors])
