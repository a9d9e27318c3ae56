"""Global pooling of a convolutional feature map into one descriptor per image."""

from __future__ import annotations

import torch

from lookalike.retrieval.errors import UnknownPooling

POOLING_METHODS = ("gap", "gem", "mac")
_GEM_EPS = 1e-6


def _gap(features: torch.Tensor, p: float) -> torch.Tensor:
    """Average over positions (SPoC): robust, the usual default for retrieval."""
    return features.mean(dim=(2, 3))


def _mac(features: torch.Tensor, p: float) -> torch.Tensor:
    """Maximum over positions (MAC): keeps the strongest activation of each channel."""
    return features.amax(dim=(2, 3))


def _gem(features: torch.Tensor, p: float) -> torch.Tensor:
    """Generalised mean (GeM): p=1 is average, large p approaches max."""
    return features.clamp(min=_GEM_EPS).pow(p).mean(dim=(2, 3)).pow(1.0 / p)


_POOLERS = {"gap": _gap, "mac": _mac, "gem": _gem}


def pool(features: torch.Tensor, *, method: str = "gap", p: float = 3.0) -> torch.Tensor:
    """(N,C,h,w) feature map to (N,C) descriptors with `method`; `p` is GeM's exponent."""
    pooler = _POOLERS.get(method)
    if pooler is None:
        allowed = ", ".join(POOLING_METHODS)
        raise UnknownPooling(f"unknown pooling method '{method}'; allowed: {allowed}")
    if features.dim() != 4:
        raise ValueError(f"expected a (N,C,h,w) feature map, got shape {tuple(features.shape)}")
    return pooler(features, p)
