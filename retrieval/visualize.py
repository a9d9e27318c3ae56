"""What a trained network responds to: its first-layer filters, the image patches that excite
one channel most, and the saliency of a similarity score (its gradient on the input pixels)."""

from __future__ import annotations

import math

import numpy as np
import torch
from PIL import Image
from torch import nn

from lookalike.retrieval.embedding.pooling import pool
from lookalike.retrieval.errors import InvalidTrainingConfig

_GAP = 2
SALIENCY_PERCENTILE = 99.0
SALIENCY_BLUR = 9


def first_convolution(network: nn.Module) -> nn.Conv2d:
    """The first Conv2d met walking the network's modules in order."""
    for module in network.modules():
        if isinstance(module, nn.Conv2d):
            return module
    raise InvalidTrainingConfig("this network has no 2-D convolution to show")


def _tile(weight: torch.Tensor, tile: int) -> Image.Image:
    """One (C,k,k) filter stretched to 0..255 and scaled to tile x tile (grey if C != 3)."""
    values = weight.detach().float()
    values = (values - values.min()) / (values.max() - values.min()).clamp(min=1e-12)
    pixels = (values * 255).round().to(torch.uint8)
    array = pixels.permute(1, 2, 0).numpy() if pixels.shape[0] == 3 else pixels.mean(
        dim=0, dtype=torch.float32).round().to(torch.uint8).numpy()
    return Image.fromarray(array).resize((tile, tile), Image.Resampling.NEAREST)


def filter_grid(conv: nn.Conv2d, *, tile: int = 32) -> Image.Image:
    """The convolution's filters as a square-ish grid of tiles, each stretched to its own
    range (RGB for 3 input channels, their mean in grey otherwise)."""
    weight = conv.weight
    return contact_sheet([_tile(weight[i], tile) for i in range(weight.shape[0])], tile=tile)


def contact_sheet(images: list[Image.Image], *, tile: int, columns: int | None = None
                  ) -> Image.Image:
    """Images resized to tile x tile on a white sheet, `columns` per row (default: square)."""
    columns = columns or max(1, math.ceil(math.sqrt(len(images))))
    rows = max(1, math.ceil(len(images) / columns))
    step = tile + _GAP
    sheet = Image.new("RGB", (columns * step + _GAP, rows * step + _GAP), "white")
    for index, image in enumerate(images):
        row, column = divmod(index, columns)
        sheet.paste(image.convert("RGB").resize((tile, tile)),
                    (_GAP + column * step, _GAP + row * step))
    return sheet


def channel_peaks(maps: torch.Tensor, channel: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For (N,C,h,w) maps: each image's strongest response of `channel` and its (row, col)."""
    if not 0 <= channel < maps.shape[1]:
        raise InvalidTrainingConfig(f"channel {channel} does not exist; this layer has "
                                    f"{maps.shape[1]} (0..{maps.shape[1] - 1})")
    flat = maps[:, channel].flatten(1)
    values, where = flat.max(dim=1)
    width = maps.shape[-1]
    return values.numpy(), (where // width).numpy(), (where % width).numpy()


def patch_box(row: int, col: int, *, map_size: tuple[int, int], image_size: int
              ) -> tuple[int, int, int, int]:
    """The (left, top, right, bottom) input square around map cell (row, col): two cells wide
    (a rough receptive field), at least a quarter of the image."""
    height, width = map_size
    side = max(image_size // 4, round(2 * image_size / min(height, width)))
    centre_y = (row + 0.5) * image_size / height
    centre_x = (col + 0.5) * image_size / width
    left = int(min(max(0, centre_x - side / 2), image_size - side))
    top = int(min(max(0, centre_y - side / 2), image_size - side))
    return left, top, left + side, top + side


def descriptor(trunk: nn.Module, inputs: torch.Tensor, *, pooling: str, p: float = 3.0
               ) -> torch.Tensor:
    """(N,D) unit-norm pooled descriptors of normalised (N,3,S,S) inputs, differentiable."""
    return nn.functional.normalize(pool(trunk(inputs), method=pooling, p=p), dim=1)


def saliency(trunk: nn.Module, inputs: torch.Tensor, target: torch.Tensor, *, pooling: str,
             p: float = 3.0) -> np.ndarray:
    """(S,S) map in 0..1: |d score / d pixel|, the max over colour channels, where score is
    the cosine of the (1,3,S,S) input's descriptor with the unit `target` (Simonyan et al.).
    Averaged over `SALIENCY_BLUR`-pixel squares and scaled so that its `SALIENCY_PERCENTILE`
    percentile is 1 (clipped above): raw gradients are so peaked and speckled that, scaled by
    their maximum, nearly every pixel would show nothing."""
    image = inputs.detach().clone().requires_grad_(True)
    score = (descriptor(trunk, image, pooling=pooling, p=p)[0] * target).sum()
    (gradient,) = torch.autograd.grad(score, image)
    raw = gradient[0].abs().amax(dim=0)
    strength = nn.functional.avg_pool2d(raw[None, None], SALIENCY_BLUR, stride=1,
                                        padding=SALIENCY_BLUR // 2,
                                        count_include_pad=False)[0, 0]
    scale = torch.quantile(strength.flatten(), SALIENCY_PERCENTILE / 100).clamp(min=1e-12)
    return (strength / scale).clamp(max=1.0).numpy()
