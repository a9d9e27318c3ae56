"""Explain a match: heat maps over the query and a result from their last feature maps."""

from __future__ import annotations

import base64
import io
import time
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from lookalike.retrieval.explain import heat_overlay, similarity_maps
from lookalike.retrieval.images import decode_image
from lookalike.services.errors import InvalidRequest
from lookalike.services.ingest.images import original_file
from lookalike.services.ingest.prepare import PrepareConfig, decode_for_model, prepare_config
from lookalike.services.runtime import Runtime
from lookalike.services.spaces.lookup import find_space

OVERLAY_SIDE = 512


@dataclass(frozen=True)
class Explained:
    """One image's side of an explanation: its overlay as PNG bytes and the raw grid."""

    png: bytes
    grid: np.ndarray

    def to_public(self) -> dict:
        return {"overlay_png": base64.b64encode(self.png).decode("ascii"),
                "grid": np.round(self.grid, 6).tolist()}


@dataclass(frozen=True)
class Explanation:
    space: str
    score: float
    exact: bool
    took_ms: float
    query: Explained
    result: Explained

    def to_public(self) -> dict:
        """The JSON answer of /v1/explain: both overlays (base64 PNG) and their grids."""
        return {"space": self.space, "score": round(self.score, 6), "exact": self.exact,
                "took_ms": round(self.took_ms, 3), "query": self.query.to_public(),
                "result": self.result.to_public()}


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()


def _decode(config: PrepareConfig, data: bytes) -> tuple[torch.Tensor, Image.Image]:
    """The model's input, exactly as search makes it, and the image shrunk to the overlay's size.

    One decode serves both, except for a JPEG that the model's reduced-scale decode left smaller
    than the overlay; that one is decoded again at the overlay's reduced scale, still small.
    The image is shrunk before any overlay is drawn, so no full-size float copies are made.
    """
    decoded, tensor = decode_for_model(data, config=config)
    image = decoded.image
    if max(image.size) < OVERLAY_SIDE and image.size != (decoded.width, decoded.height):
        image = decode_image(data, max_bytes=config.max_bytes, max_pixels=config.max_pixels,
                             draft=(OVERLAY_SIDE, OVERLAY_SIDE)).image
    image.thumbnail((OVERLAY_SIDE, OVERLAY_SIDE), Image.Resampling.LANCZOS)
    return tensor, image


def _original_bytes(runtime: Runtime, image_id: int | None) -> bytes:
    assert image_id is not None
    return original_file(runtime, image_id)[0].read_bytes()


def explain_match(runtime: Runtime, *, result_id: int, space_name: str | None = None,
                  query_id: int | None = None, query: bytes | None = None) -> Explanation:
    """Which regions of the query (catalogued id or bytes) and the result made them match.

    Computed from the space's backbone on the decoded images (before any whitening); with GAP
    and MAC pooling each map sums exactly to the descriptors' cosine similarity.
    """
    if (query_id is None) == (query is None):
        raise InvalidRequest("give exactly one query: a catalogued image id or image bytes")
    started = time.perf_counter()
    with runtime.session() as session:
        space = find_space(session=session, name=space_name)
    embedder = runtime.embedder(space)
    config = prepare_config(runtime, embedder)
    query_bytes = query if query is not None else _original_bytes(runtime, query_id)
    tensor_q, image_q = _decode(config, query_bytes)
    tensor_r, image_r = _decode(config, _original_bytes(runtime, result_id))
    features = embedder.feature_maps(torch.stack([tensor_q, tensor_r]))
    maps = similarity_maps(features[0], features[1], pooling=space.pooling)
    low = float(min(maps.query.min(), maps.result.min()))
    high = float(max(maps.query.max(), maps.result.max()))

    def side(image: Image.Image, grid: np.ndarray) -> Explained:
        return Explained(_png(heat_overlay(image, grid, low=low, high=high)), grid)

    return Explanation(space=space.name, score=maps.score, exact=maps.exact,
                       took_ms=(time.perf_counter() - started) * 1000,
                       query=side(image_q, maps.query), result=side(image_r, maps.result))
