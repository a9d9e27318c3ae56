"""A space's backbone made visible: first-layer filters, the catalog patches that excite one
channel of one block most, and a saliency map of a similarity score, each written as a PNG.

Computed on the space's verified weights, in float32 and without BatchNorm folding (gradients
need the eager network), on the pooled descriptor before any whitening or head.
"""

from __future__ import annotations

import heapq
import io
import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image
from torch import nn

from lookalike.retrieval import atomic
from lookalike.retrieval.embedding.embedder import image_to_pixels
from lookalike.retrieval.explain import heat_overlay
from lookalike.retrieval.images import decode_image
from lookalike.retrieval.models.registry import BackboneSpec, get_backbone, load_feature_extractor
from lookalike.retrieval.training.network import trunk_blocks
from lookalike.retrieval.visualize import (
    channel_peaks,
    contact_sheet,
    descriptor,
    filter_grid,
    first_convolution,
    patch_box,
    saliency,
)
from lookalike.services.catalog import images as image_queries
from lookalike.services.catalog.models import Space
from lookalike.services.errors import InvalidRequest
from lookalike.services.runtime import Runtime
from lookalike.services.spaces.lookup import find_space, space_weights

log = logging.getLogger(__name__)

TOP = 9
PATCH_TILE = 96
_BATCH = 32
_MAX_PIXELS = 1 << 40  # stored originals passed the upload limits when ingested


@dataclass(frozen=True)
class Backbone:
    """A space and its trunk, loaded for looking inside (eval mode, float32)."""

    space: Space
    spec: BackboneSpec
    trunk: nn.Module

    def inputs(self, pixels: torch.Tensor) -> torch.Tensor:
        """(N,3,S,S) uint8 pixels normalised as the backbone expects."""
        mean = torch.tensor(self.spec.weights.mean).view(1, 3, 1, 1) * 255
        std = torch.tensor(self.spec.weights.std).view(1, 3, 1, 1) * 255
        return (pixels.float() - mean) / std


def open_backbone(runtime: Runtime, space_name: str | None) -> Backbone:
    """The space called `space_name` (default: the default space) and its trunk."""
    with runtime.session() as session:
        space = find_space(session=session, name=space_name)
        session.expunge(space)
    spec = get_backbone(space.backbone)
    trunk = load_feature_extractor(spec, weights=space_weights(space, settings=runtime.settings))
    return Backbone(space, spec, trunk)


def _write_png(image: Image.Image, path: Path) -> Path:
    atomic.write_atomic(path, lambda handle: image.save(handle, format="PNG"))
    return path


def _stored_image(path: str) -> Image.Image:
    data = Path(path).read_bytes()
    return decode_image(data, max_bytes=len(data), max_pixels=_MAX_PIXELS).image


def write_filters(runtime: Runtime, *, space_name: str | None, out: Path) -> Path:
    """The first convolution's filters of the space's backbone as a grid PNG at `out`."""
    backbone = open_backbone(runtime, space_name)
    return _write_png(filter_grid(first_convolution(backbone.trunk)), out)


def filters_png(runtime: Runtime, *, space_name: str) -> bytes:
    """The filter grid of `write_filters` as PNG bytes (for the API)."""
    buffer = io.BytesIO()
    filter_grid(first_convolution(open_backbone(runtime, space_name).trunk)).save(buffer, "PNG")
    return buffer.getvalue()


def write_saliency(runtime: Runtime, *, space_name: str | None, image: Path, out: Path,
                   match_id: int | None = None) -> Path:
    """Saliency of IMAGE's similarity to catalog image `match_id` (default: to its own
    descriptor, i.e. what its descriptor rests on), laid over the image, as a PNG at `out`."""
    overlay = _saliency_overlay(runtime, space_name, _stored_image(str(image)), match_id)
    return _write_png(overlay, out)


def saliency_png(runtime: Runtime, *, space_name: str, data: bytes,
                 match_id: int | None = None) -> bytes:
    """The saliency overlay of `write_saliency` for uploaded bytes (checked against the upload
    limits, never stored), as PNG bytes (for the API)."""
    settings = runtime.settings
    picture = decode_image(data, max_bytes=settings.max_upload_bytes,
                           max_pixels=settings.max_pixels).image
    buffer = io.BytesIO()
    _saliency_overlay(runtime, space_name, picture, match_id).save(buffer, "PNG")
    return buffer.getvalue()


def _saliency_overlay(runtime: Runtime, space_name: str | None, picture: Image.Image,
                      match_id: int | None) -> Image.Image:
    """|d cosine / d pixel| of `picture` against catalog image `match_id` (or itself), over it."""
    backbone = open_backbone(runtime, space_name)
    size = backbone.spec.weights.input_size
    inputs = backbone.inputs(image_to_pixels(picture, size=size)[None])
    pooling, p = backbone.space.pooling, backbone.space.options.gem_p
    if match_id is None:
        reference = inputs
    else:
        stored = _catalog_paths(runtime, [match_id])
        if not stored:
            raise InvalidRequest(f"image {match_id} is not in the catalog")
        reference = backbone.inputs(image_to_pixels(_stored_image(stored[0][1]), size=size)[None])
    with torch.no_grad():
        target = descriptor(backbone.trunk, reference, pooling=pooling, p=p)[0]
    strength = saliency(backbone.trunk, inputs, target, pooling=pooling, p=p)
    shown = picture.convert("RGB").resize((max(size, 224), max(size, 224)))
    return heat_overlay(shown, strength, low=0.0, high=1.0)


def _catalog_paths(runtime: Runtime, ids: list[int] | None, limit: int = 0
                   ) -> list[tuple[int, str]]:
    """(id, original's path, resolved under the home) of live catalog images: the given ids,
    or the first `limit`."""
    layout = runtime.settings.layout
    with runtime.read_session() as session:
        if ids is not None:
            rows = list(image_queries.images_by_ids(session=session, ids=ids).values())
        else:
            rows = image_queries.live_images_after(session=session, after_id=0, limit=limit)
        return [(row.id, str(layout.resolve(row.stored_path))) for row in rows
                if row is not None and row.stored_path and row.status != "deleted"]


def _block_maps(blocks: list[nn.Module], inputs: torch.Tensor, layer: int) -> torch.Tensor:
    """The output of trunk block `layer` (0-based) for normalised inputs."""
    with torch.inference_mode():
        maps = inputs
        for block in blocks[: layer + 1]:
            maps = block(maps)
        return maps


def check_unit(runtime: Runtime, *, space_name: str | None, layer: int, channel: int) -> str:
    """The space's name once `layer` is one of its backbone's trunk blocks and `channel` one
    of that block's output channels (found by one pass of a blank image); InvalidRequest
    naming the allowed range otherwise."""
    backbone = open_backbone(runtime, space_name)
    blocks = _checked_blocks(backbone, layer)
    size = backbone.spec.weights.input_size
    channels = _block_maps(blocks, torch.zeros(1, 3, size, size), layer).shape[1]
    if not 0 <= channel < channels:
        raise InvalidRequest(f"channel {channel} does not exist; block {layer} of "
                             f"{backbone.spec.name} has {channels} (0..{channels - 1})")
    return backbone.space.name


def _checked_blocks(backbone: Backbone, layer: int) -> list[nn.Module]:
    """The backbone's trunk blocks, once `layer` is one of them."""
    blocks = trunk_blocks(backbone.trunk)
    if not 0 <= layer < len(blocks):
        raise InvalidRequest(f"layer {layer} does not exist; backbone {backbone.spec.name} has "
                             f"{len(blocks)} blocks (0..{len(blocks) - 1})")
    return blocks


def write_top_patches(runtime: Runtime, *, space_name: str | None, layer: int, channel: int,
                      out: Path, limit: int = 5000) -> tuple[Path, list[tuple[int, float]]]:
    """Run the first `limit` catalog images through the backbone up to block `layer`, keep
    the 9 whose `channel` responds most, and write their patches around the peak as a 3x3
    PNG at `out`. Returns the PNG and (image id, response) best first."""
    backbone = open_backbone(runtime, space_name)
    blocks = _checked_blocks(backbone, layer)
    size = backbone.spec.weights.input_size
    best: list[tuple[float, int, tuple[int, int, int, int]]] = []
    rows = _catalog_paths(runtime, None, limit)
    for start in range(0, len(rows), _BATCH):
        chunk = rows[start : start + _BATCH]
        pixels = torch.stack([image_to_pixels(_stored_image(path), size=size)
                              for _, path in chunk])
        maps = _block_maps(blocks, backbone.inputs(pixels), layer)
        values, ys, xs = channel_peaks(maps, channel)
        for (image_id, _), value, y, x in zip(chunk, values, ys, xs, strict=True):
            box = patch_box(int(y), int(x), map_size=tuple(maps.shape[-2:]), image_size=size)
            heapq.heappush(best, (float(value), image_id, box))
            if len(best) > TOP:
                heapq.heappop(best)
    ranked = sorted(best, reverse=True)
    paths = dict(rows)
    patches = [image_to_pixels(_stored_image(paths[image_id]), size=size).permute(1, 2, 0)
               for _, image_id, _ in ranked]
    crops = [Image.fromarray(patch.numpy()).crop(box) for patch, (_, _, box) in
             zip(patches, ranked, strict=True)]
    sheet = contact_sheet(crops, tile=PATCH_TILE, columns=3)
    log.info("top patches of layer %d channel %d over %d images", layer, channel, len(rows))
    return _write_png(sheet, out), [(image_id, value) for value, image_id, _ in ranked]
