"""Why two images match: each feature-map location's share of their descriptor similarity."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from lookalike.retrieval.embedding.pooling import POOLING_METHODS, pool
from lookalike.retrieval.errors import UnknownPooling

# Colour ramp of the heat map, from no contribution to the most: blue, red, orange, yellow.
_RAMP = np.array([[30, 30, 160], [200, 30, 60], [250, 140, 20], [255, 230, 0]], np.float32)
_MAX_ALPHA = 0.6


@dataclass(frozen=True)
class SimilarityMaps:
    """Per-location contributions (h, w) for each image; each map sums to `score` when exact."""

    query: np.ndarray
    result: np.ndarray
    score: float
    exact: bool


def _share(own: torch.Tensor, other_unit: torch.Tensor, method: str) -> tuple[np.ndarray, bool]:
    """(h, w) contributions of `own` (C,h,w) locations to dot(normalised pool(own), other_unit).

    GAP is linear, so location (x, y) contributes other·f(x, y) / (h·w·|pool|) exactly; MAC
    credits each channel to its arg-max location, also exact; GeM is credited as GAP would be.
    """
    channels, height, width = own.shape
    norm = torch.linalg.vector_norm(pool(own[None], method=method)[0]).clamp(min=1e-12)
    if method == "mac":
        flat = own.reshape(channels, -1)
        winners = flat.argmax(dim=1)
        shares = torch.zeros(height * width, dtype=own.dtype)
        shares.index_add_(0, winners, flat.max(dim=1).values * other_unit)
        return (shares / norm).reshape(height, width).numpy(), True
    per_location = torch.einsum("chw,c->hw", own, other_unit) / (height * width * norm)
    return per_location.numpy(), method == "gap"


def similarity_maps(query: torch.Tensor, result: torch.Tensor, *, pooling: str) -> SimilarityMaps:
    """How much each location of two (C,h,w) feature maps adds to their cosine similarity."""
    if pooling not in POOLING_METHODS:
        raise UnknownPooling(f"unknown pooling method '{pooling}'; allowed: "
                             f"{', '.join(POOLING_METHODS)}")
    if query.dim() != 3 or result.dim() != 3 or query.shape[0] != result.shape[0]:
        raise ValueError(f"expected two (C,h,w) maps with the same C, got "
                         f"{tuple(query.shape)} and {tuple(result.shape)}")
    unit_q = torch.nn.functional.normalize(pool(query[None], method=pooling)[0], dim=0)
    unit_r = torch.nn.functional.normalize(pool(result[None], method=pooling)[0], dim=0)
    query_map, exact = _share(query, unit_r, pooling)
    result_map, _ = _share(result, unit_q, pooling)
    return SimilarityMaps(query=query_map.astype(np.float32), result=result_map.astype(np.float32),
                          score=float(unit_q @ unit_r), exact=exact)


def _colours(levels: np.ndarray) -> np.ndarray:
    """(H, W) values in [0, 1] to (H, W, 3) float RGB along the heat ramp."""
    position = levels * (len(_RAMP) - 1)
    low = np.clip(np.floor(position).astype(int), 0, len(_RAMP) - 2)
    fraction = (position - low)[..., None]
    colours: np.ndarray = _RAMP[low] * (1 - fraction) + _RAMP[low + 1] * fraction
    return colours


def heat_overlay(image: Image.Image, contributions: np.ndarray, *, low: float,
                 high: float) -> Image.Image:
    """`image` with its contributions (h, w) laid over it as a heat map, from nothing drawn at
    `low` to full strength at `high`: give two images the same range to compare their maps."""
    rgb = image.convert("RGB")
    span = max(high - low, 1e-12)
    levels = np.clip((contributions - low) / span, 0.0, 1.0).astype(np.float32)
    grid = Image.fromarray(levels, mode="F").resize(rgb.size, Image.Resampling.BILINEAR)
    heat = np.clip(np.asarray(grid, dtype=np.float32), 0.0, 1.0)
    alpha = (heat * _MAX_ALPHA)[..., None]
    blended = np.asarray(rgb, dtype=np.float32) * (1 - alpha) + _colours(heat) * alpha
    return Image.fromarray(blended.round().astype(np.uint8), mode="RGB")
