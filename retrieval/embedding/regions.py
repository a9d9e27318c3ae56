"""Region descriptors: a box of an image described with a backbone's trunk, either as a
crop (its pixels cut out and squashed to the model's input, as a whole image is) or by
RoIAlign on the whole image's feature map; either can weight the region's centre above its
border, where the photo around an object (absent from a lone-object query) shows. A crop's
vector can also carry an earlier block of the trunk (`TrunkTap`): the last map's features
are near the classifier (what kind of thing a region holds), a block before the last
downsampling has cells twice as fine and mid-level features (parts, strokes, texture) that
tell one instance from another of its kind: multi-layer descriptors for instance retrieval.

Both end as the embedder's vectors do (L2, whitening, projection head), so a region vector
and a query vector made the same way compare by inner product; a tapped block's pooled
vector, L2-normalised, is appended with the same weight and the whole normalised again."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image
from torch import nn

from lookalike.retrieval.detection.boxes import Box
from lookalike.retrieval.embedding.embedder import Embedder, image_to_pixels
from lookalike.retrieval.embedding.pooling import pool
from lookalike.retrieval.models.vision import vision_ops

REGION_METHODS = ("crop", "roi-align")
ROI_OUTPUT = 3  # RoIAlign's output grid per region (3x3 cells, then pooled)


class TrunkTap:
    """A torch trunk (an `nn.Sequential` of blocks) cut after block `layer`, run in eager
    fp32 to give that block's map beside the last one; `channels` is the block's width."""

    def __init__(self, trunk: nn.Module, *, layer: int, side: int) -> None:
        blocks = list(trunk) if isinstance(trunk, nn.Sequential) else []
        if not 0 <= layer < len(blocks) - 1:
            raise ValueError(f"cannot tap block {layer}: the trunk must be a sequence of "
                             f"blocks and the tap one before its last (it has {len(blocks)})")
        self.layer = layer
        self.front = nn.Sequential(*blocks[:layer + 1]).eval()
        self.back = nn.Sequential(*blocks[layer + 1:]).eval()
        with torch.inference_mode():
            self.channels = int(self.front(torch.zeros(1, 3, side, side)).shape[1])

    def early(self, inputs: torch.Tensor) -> torch.Tensor:
        """Normalised (N,3,S,S) float pixels to the tapped block's map alone."""
        with torch.inference_mode():
            early: torch.Tensor = self.front(inputs).float()
            return early

    def maps(self, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised (N,3,S,S) float pixels to (the tapped block's map, the last map)."""
        with torch.inference_mode():
            early = self.front(inputs)
            return early.float(), self.back(early).float()


def tap_layer(trunk: nn.Module, *, side: int) -> int:
    """The block a region's vector taps by default: the last one before the trunk's final
    downsampling (MobileNetV2: block 13, 96 channels at stride 16; ResNet: layer3), whose
    cells are twice as fine as the last map's."""
    if not isinstance(trunk, nn.Sequential):
        raise ValueError(f"cannot tap a {type(trunk).__name__}: only a trunk that is a "
                         "sequence of blocks (torchvision's MobileNet, VGG, ResNet) can be")
    x = torch.zeros(1, 3, side, side)
    sizes = []
    with torch.inference_mode():
        for block in trunk.eval():
            x = block(x)
            sizes.append(x.shape[-1])
    finer = [i for i, size in enumerate(sizes[:-1]) if size > sizes[-1]]
    if not finer:
        raise ValueError("the trunk never downsamples: no earlier block is finer to tap")
    return finer[-1]


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


def _normalised(embedder: Embedder, batch: torch.Tensor) -> torch.Tensor:
    """(N,3,S,S) uint8 pixels as the backbone's float inputs (its mean and std)."""
    weights = embedder.spec.weights
    mean = torch.tensor(weights.mean).view(1, 3, 1, 1) * 255.0
    std = torch.tensor(weights.std).view(1, 3, 1, 1) * 255.0
    return (batch.float() - mean) / std


def _tapped(embedder: Embedder, tap: TrunkTap, batch: torch.Tensor,
            centre: float | None) -> np.ndarray:
    """Vectors of (N,3,S,S) uint8 pixels: the last map's as `_pooled` makes them, the tapped
    block's (weighted alike, pooled as the embedder pools, L2) appended, normalised."""
    early, last = tap.maps(_normalised(embedder, batch))
    if centre is not None:
        early = early * centre_weights(early.shape[2], early.shape[3], sigma=centre)
    options = embedder.options
    extra = torch.nn.functional.normalize(pool(early, method=options.pooling, p=options.gem_p))
    joined = np.concatenate([_pooled(embedder, last, centre), extra.numpy()], axis=1)
    unit: np.ndarray = joined / np.linalg.norm(joined, axis=1, keepdims=True)
    return unit


def describe_crops(embedder: Embedder, crops: Sequence[Image.Image], *,
                   centre: float | None = None, tap: TrunkTap | None = None,
                   batch: int = 32) -> np.ndarray:
    """(N,D) vectors of region crops (D = the embedder's, plus the tapped block's channels
    with a `tap`); without `centre` or `tap`, exactly `embedder.embed_images`."""
    if centre is None and tap is None:
        return embedder.embed_images(crops)
    chunks = []
    for start in range(0, len(crops), batch):
        pixels = torch.stack([embedder.to_tensor(image) for image in crops[start:start + batch]])
        chunks.append(_pooled(embedder, embedder.feature_maps(pixels), centre) if tap is None
                      else _tapped(embedder, tap, pixels, centre))
    if not chunks:
        dim = embedder.dim + (tap.channels if tap is not None else 0)
        return np.zeros((0, dim), dtype=np.float32)
    return np.ascontiguousarray(np.concatenate(chunks), dtype=np.float32)


def tapped_cells(embedder: Embedder, tap: TrunkTap,
                 crops: Sequence[Image.Image]) -> torch.Tensor:
    """(N,C,h,w) tapped-block maps of crops (squashed as `describe_crops` squashes them),
    the C features of each place L2-normalised: what `cell_agreement` compares."""
    if not crops:
        raise ValueError("tapped_cells needs at least one crop")
    pixels = torch.stack([embedder.to_tensor(image) for image in crops])
    return torch.nn.functional.normalize(tap.early(_normalised(embedder, pixels)), dim=1)


def cell_agreement(query: torch.Tensor, regions: torch.Tensor, *,
                   centre: float | None, shift: int = 0) -> np.ndarray:
    """(N,) agreement of a (1,C,h,w) query's cells with (N,C,h,w) regions' cells: the cosine
    of the features at the same place, averaged with the centre weights (uniform without
    `centre`). A second, spatial look at a shortlist: two crops of one object agree place
    by place, two things whose pooled vectors merely resemble each other do not. With
    `shift`, each region's best agreement over moves of its cells by up to that many places
    each way: a detector's box off by a tenth of its side moves the object a cell or more."""
    if query.shape[0] != 1 or query.shape[1:] != regions.shape[1:]:
        raise ValueError(f"a (1,C,h,w) query and (N,C,h,w) regions of the same C,h,w are "
                         f"needed, got {tuple(query.shape)} and {tuple(regions.shape)}")
    height, width = query.shape[2], query.shape[3]
    if not 0 <= shift < min(height, width):
        raise ValueError(f"shift must be 0 to {min(height, width) - 1} places, got {shift}")
    weights = (centre_weights(height, width, sigma=centre)[0, 0] if centre is not None
               else torch.ones(height, width))
    best = torch.full((regions.shape[0],), -torch.inf)
    for dy in range(-shift, shift + 1):
        for dx in range(-shift, shift + 1):
            rows = slice(max(0, -dy), min(height, height - dy))
            cols = slice(max(0, -dx), min(width, width - dx))
            moved = regions[:, :, rows.start + dy:rows.stop + dy, cols.start + dx:cols.stop + dx]
            cosines = (query[:, :, rows, cols] * moved).sum(dim=1)
            best = torch.maximum(best, (cosines * weights[rows, cols]).sum(dim=(1, 2)))
    agreement: np.ndarray = (best / weights.sum()).numpy().astype(np.float32)
    return agreement


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
    cells = vision_ops().roi_align(maps, rois, output_size=ROI_OUTPUT,
                                   spatial_scale=maps.shape[-1] / side, sampling_ratio=2,
                                   aligned=True)
    return _pooled(embedder, cells, centre)
