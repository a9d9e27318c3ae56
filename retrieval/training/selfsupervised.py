"""Self-supervised copy-detection losses (SSCD: Pizzi et al., 2022): each image is its own
class, so two edited views of it must match (InfoNCE over both views of the batch), and a
KoLeo entropy term spreads the descriptors so that unrelated images stay apart."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional

from lookalike.retrieval.errors import InvalidTrainingConfig

__all__ = ["info_nce_loss", "koleo_loss", "sscd_loss"]


def _check_views(first: Tensor, second: Tensor) -> None:
    """Raise unless the two views are (N, D) batches of the same shape with N >= 2."""
    if first.ndim != 2 or first.shape != second.shape or first.shape[0] < 2:
        raise InvalidTrainingConfig(f"two views must be (N, D) batches of one shape with N >= 2, "
                                    f"got {tuple(first.shape)} and {tuple(second.shape)}")


def info_nce_loss(first: Tensor, second: Tensor, *, temperature: float = 0.05) -> Tensor:
    """InfoNCE (SimCLR's NT-Xent) over 2N L2-normalised views: each view's positive is the
    other view of its image, every other view of the batch is a negative."""
    _check_views(first, second)
    if temperature <= 0:
        raise InvalidTrainingConfig(f"temperature {temperature} must be > 0")
    views = functional.normalize(torch.cat([first, second]).float(), dim=1)
    logits = views @ views.T / temperature
    count = first.shape[0]
    logits = logits.masked_fill(torch.eye(2 * count, dtype=torch.bool, device=views.device),
                                float("-inf"))
    targets = torch.cat([torch.arange(count, 2 * count), torch.arange(count)]).to(views.device)
    return functional.cross_entropy(logits, targets)


def koleo_loss(embeddings: Tensor, *, eps: float = 1e-8) -> Tensor:
    """The Kozachenko-Leonenko entropy estimator's loss: -mean log(distance of each
    L2-normalised vector to its nearest other vector). Low when vectors spread out."""
    if embeddings.ndim != 2 or embeddings.shape[0] < 2:
        raise InvalidTrainingConfig(f"KoLeo needs an (N, D) batch with N >= 2, got "
                                    f"{tuple(embeddings.shape)}")
    vectors = functional.normalize(embeddings.float(), dim=1)
    similarity = vectors @ vectors.T
    similarity.fill_diagonal_(-2.0)
    nearest = similarity.argmax(dim=1)
    distances = (vectors - vectors[nearest]).norm(dim=1)
    return -torch.log(distances + eps).mean()


def sscd_loss(first: Tensor, second: Tensor, *, temperature: float = 0.05,
              koleo_weight: float = 0.1) -> Tensor:
    """InfoNCE of the two views plus `koleo_weight` times KoLeo over both views."""
    koleo = koleo_loss(torch.cat([first, second])) if koleo_weight else first.sum() * 0.0
    return info_nce_loss(first, second, temperature=temperature) + koleo_weight * koleo
