"""Global pooling of a convolutional feature map into one descriptor per image."""

from __future__ import annotations

import math

import torch

from lookalike.retrieval.errors import UnknownPooling

POOLING_METHODS = ("gap", "gem", "mac", "rmac")
RMAC_LEVELS = 3
_GEM_EPS = 1e-6
_RMAC_OVERLAP = 0.4


def _gap(features: torch.Tensor, p: float) -> torch.Tensor:
    """Average over positions (SPoC): robust, the usual default for retrieval."""
    return features.mean(dim=(2, 3))


def _mac(features: torch.Tensor, p: float) -> torch.Tensor:
    """Maximum over positions (MAC): keeps the strongest activation of each channel."""
    return features.amax(dim=(2, 3))


def _gem(features: torch.Tensor, p: float) -> torch.Tensor:
    """Generalised mean (GeM): p=1 is average, large p approaches max."""
    return features.clamp(min=_GEM_EPS).pow(p).mean(dim=(2, 3)).pow(1.0 / p)


def _offsets(length: int, side: int, level: int) -> list[int]:
    """Start positions of regions of `side` along an axis: at least `level`, overlapping ~40%."""
    if side >= length:
        return [0]
    count = max(level, math.ceil((length - side) / ((1 - _RMAC_OVERLAP) * side)) + 1)
    step = (length - side) / (count - 1)
    return sorted({round(i * step) for i in range(count)})


def rmac_regions(height: int, width: int, levels: int = RMAC_LEVELS) -> list[tuple[int, int, int]]:
    """(top, left, side) of R-MAC's square regions: side ceil(2*min/(l+1)) at levels l=1..L."""
    regions: list[tuple[int, int, int]] = []
    for level in range(1, levels + 1):
        side = max(1, math.ceil(2 * min(height, width) / (level + 1)))
        for top in _offsets(height, side, level):
            regions.extend((top, left, side) for left in _offsets(width, side, level))
    return regions


def _rmac(features: torch.Tensor, p: float) -> torch.Tensor:
    """Regional MAC (Tolias et al.): L2-normalised MAC of each region, summed over regions."""
    total = torch.zeros(features.shape[:2], dtype=features.dtype, device=features.device)
    for top, left, side in rmac_regions(features.shape[2], features.shape[3]):
        region = features[:, :, top : top + side, left : left + side].amax(dim=(2, 3))
        total += torch.nn.functional.normalize(region, dim=1)
    return total


_POOLERS = {"gap": _gap, "mac": _mac, "gem": _gem, "rmac": _rmac}


def pool(features: torch.Tensor, *, method: str = "gap", p: float = 3.0) -> torch.Tensor:
    """(N,C,h,w) feature map to (N,C) descriptors with `method`; `p` is GeM's exponent."""
    pooler = _POOLERS.get(method)
    if pooler is None:
        allowed = ", ".join(POOLING_METHODS)
        raise UnknownPooling(f"unknown pooling method '{method}'; allowed: {allowed}")
    if features.dim() != 4:
        raise ValueError(f"expected a (N,C,h,w) feature map, got shape {tuple(features.shape)}")
    return pooler(features, p)
