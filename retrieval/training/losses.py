"""Training losses for embeddings: softmax classification, contrastive, batch-hard triplet."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional

from lookalike.retrieval.training.mining import hardest_triplets, pairwise_distances

LOSSES = ("softmax", "contrastive", "triplet")


def softmax_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """Cross-entropy of (N,classes) logits against int64 labels, averaged over the batch."""
    return functional.cross_entropy(logits.float(), labels)


def contrastive_loss(embeddings: Tensor, labels: Tensor, *, margin: float = 0.7) -> Tensor:
    """Contrastive loss (Hadsell et al.; Radenović et al. for retrieval) over all pairs i<j.

    With d the Euclidean distance, a positive pair (same label) costs d^2 and a negative pair
    relu(margin - d)^2. The loss is mean(positive costs) + mean(negative costs): each kind is
    averaged over its own pairs, so the batch's class balance does not tilt it; a kind with
    no pair in the batch adds 0.
    """
    distances = pairwise_distances(embeddings.float())
    upper = torch.ones_like(distances, dtype=torch.bool).triu(diagonal=1)
    same = labels[:, None] == labels[None, :]
    positive, negative = upper & same, upper & ~same
    loss = embeddings.new_zeros((), dtype=torch.float32)
    if positive.any():
        loss = loss + distances[positive].pow(2).mean()
    if negative.any():
        loss = loss + functional.relu(margin - distances[negative]).pow(2).mean()
    return loss


def triplet_loss(embeddings: Tensor, labels: Tensor, *, margin: float = 0.2) -> Tensor:
    """Batch-hard triplet loss: mean over mined anchors of relu(d(a,p) - d(a,n) + margin), with
    p the anchor's farthest positive and n its closest negative (`mining.hardest_triplets`).

    0 (still part of the graph) when no anchor has both a positive and a negative.
    """
    triplets = hardest_triplets(embeddings, labels)
    if not len(triplets):
        return embeddings.float().sum() * 0.0
    distances = pairwise_distances(embeddings.float())
    positive = distances[triplets.anchors, triplets.positives]
    negative = distances[triplets.anchors, triplets.negatives]
    return functional.relu(positive - negative + margin).mean()
