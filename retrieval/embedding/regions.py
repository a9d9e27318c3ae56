"""Region descriptors: a box of an image described with a backbone's trunk, either as a
crop (its pixels cut out and squashed to the model's input, as a whole image is) or by
RoIAlign on the whole image's feature map; either can weight the region's centre above its
border, where the photo around an object (absent from a lone-object query) shows.

Both end as the embedder's vectors do (L2, whitening, projection head), so a region vector
and a query vector made the same way compare by inner product."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image
from torchvision.ops import roi_align

from lookalike.retrieval.detection.boxes import Box
from lookalike.retrieval.embedding.embedder import Embedder, image_to_pixels
from lookalike.retrieval.embedding.pooling import pool

REGION_METHODS = ("crop", "roi-align")
ROI_OUTPUT = 3  # RoIAlign's output grid per region (3x3 cells, then pooled)


def centre_weights(height: int, width: int, *, sigma: float) -> torch.Tensor:
    """(1,1,h,w) Gaussian weights centred on a map, std `sigma` of its side, mean 1."""
    if sigma <= 0:
        raise ValueError(f"centre sigma must be > 0, got {sigma}")
    ys = (torch.arange(height, dtype=torch.float32) + 0.5) / height - 0.5
    xs = (torch.arange(width, dtype=torch.float32) + 0.5) / width - 0.5
    weights = torch.exp(-(ys[:, None] ** 2 + xs[None, :] ** 2) / (2 * sigma ** 2))
    return (weights / weights.mean()).view(1, 1, height, width)


def _pooled(embedder: Embedder, maps: torch.Tensor, centre: float | None) -> np.ndarray:
    """Vectors of (N,C,h,w) maps: centre-weighted if asked, pooled as the embedder pools."""
    if centre is not None:
        maps = maps * centre_weights(maps.shape[2], maps.shape[3], sigma=centre)
    options = embedder.options
    return embedder.finish(pool(maps, method=options.pooling, p=options.gem_p))


def describe_crops(embedder: Embedder, crops: Sequence[Image.Image], *,
                   centre: float | None = None, batch: int = 32) -> np.ndarray:
    """(N,D) vectors of region crops; without `centre`, exactly `embedder.embed_images`."""
    if centre is None:
        return embedder.embed_images(crops)
    chunks = [_pooled(embedder, embedder.feature_maps(torch.stack(
        [embedder.to_tensor(image) for image in crops[start:start + batch]])), centre)
        for start in range(0, len(crops), batch)]
    if not chunks:
        return np.zeros((0, embedder.dim), dtype=np.float32)
    return np.ascontiguousarray(np.concatenate(chunks), dtype=np.float32)


def describe_boxes(embedder: Embedder, image: Image.Image, boxes: Sequence[Box], *,
                   side: int, centre: float | None = None) -> np.ndarray:
    """(N,D) vectors of boxes (in the image's pixels) by RoIAlign: the image squashed to
    side x side goes once through the trunk, and each box's part of the feature map is
    resampled to a 3x3 grid and pooled."""
    if not boxes:
        return np.zeros((0, embedder.dim), dtype=np.float32)
    maps = embedder.feature_maps(image_to_pixels(image, size=side)[None])
    sx, sy = side / image.width, side / image.height
    rois = torch.tensor([[0.0, b.x0 * sx, b.y0 * sy, b.x1 * sx, b.y1 * sy] for b in boxes],
                        dtype=torch.float32)
    cells = roi_align(maps, rois, output_size=ROI_OUTPUT, spatial_scale=maps.shape[-1] / side,
                      sampling_ratio=2, aligned=True)
    return _pooled(embedder, cells, centre)
