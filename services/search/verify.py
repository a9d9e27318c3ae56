"""Verification at search time: the top candidates re-ranked by local-feature inliers, and
the space's calibrated "is a copy" decision on each result."""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from lookalike.retrieval.errors import ImageRejected
from lookalike.retrieval.images import decode_image
from lookalike.retrieval.verification import (
    LocalFeatures,
    extract_features,
    query_views,
    verify_pair,
    verify_views,
)
from lookalike.services.catalog.documents import CopyCalibration
from lookalike.services.catalog.models import Space
from lookalike.services.errors import ImageNotFound
from lookalike.services.ingest.images import original_file
from lookalike.services.runtime import Runtime

if TYPE_CHECKING:
    from lookalike.services.search.query import Hit

logger = logging.getLogger(__name__)

# Inliers below this are what unrelated photos reach by chance (measured: at most 7 between
# the bundled photos); they do not lift a candidate above better-scored ones.
CHANCE_INLIERS = 10
# The most keypoint pairs the "why it matched" view draws: enough to see the mapping.
SHOWN_PAIRS = 50


def verify_enabled(space: Space, verify: bool | None) -> bool:
    """The request's choice, else the space's default."""
    return space.options.verify if verify is None else verify


def decode_query(runtime: Runtime, data: bytes) -> Image.Image:
    """Query bytes decoded under the upload limits, for local features."""
    return decode_image(data, max_bytes=runtime.settings.max_upload_bytes,
                        max_pixels=runtime.settings.max_pixels).image


def stored_image(runtime: Runtime, image_id: int) -> Image.Image:
    """A catalogued image's stored original, decoded under the upload limits."""
    return decode_query(runtime, original_file(runtime, image_id)[0].read_bytes())


def verify_hits(runtime: Runtime, query: Image.Image, hits: list[Hit]) -> list[Hit]:
    """The hits with their inlier counts, re-ranked: verified ones (above chance) first by
    inliers, then the rest in their similarity order."""
    views = query_views(query)
    counted = [replace(hit, inliers=_inliers(runtime, views, hit.image_id)) for hit in hits]
    return sorted(counted, key=lambda hit: -(hit.inliers or 0)
                  if (hit.inliers or 0) >= CHANCE_INLIERS else 0)


def _inliers(runtime: Runtime, views: list[LocalFeatures], image_id: int) -> int:
    """Inliers of the query views against one catalogued image (0 when its file is gone or
    no longer decodes: verification then adds no evidence)."""
    try:
        candidate = stored_image(runtime, image_id)
    except (ImageNotFound, ImageRejected):
        logger.warning("image %s: stored file missing or unreadable, not verified", image_id)
        return 0
    return verify_views(views, extract_features(candidate)).inliers


def copy_calls(calibration: CopyCalibration, scores: np.ndarray, inliers: np.ndarray, *,
               top: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """The calibrated decision on many results at once (inliers -1: not verified; `top`:
    the query's first result; `reference`: its `margin_rank`-th best score, NaN when it has
    fewer results): inliers at their threshold, or with a margin the top result clear of
    the reference by it, or without one (an older calibration) the score at its threshold."""
    called = inliers >= calibration.inlier_threshold
    if calibration.margin_threshold is None:
        return np.asarray(called | (scores >= calibration.score_threshold), dtype=bool)
    with np.errstate(invalid="ignore"):
        clear = scores.astype(np.float64) - reference >= calibration.margin_threshold
    return np.asarray(called | (top & clear), dtype=bool)


def margin_fetch(calibration: CopyCalibration | None) -> int:
    """How many results the margin is measured over: its rank, and one more in case the
    query itself (a catalogued id) is among them."""
    rank = calibration.margin_rank if calibration is not None else None
    return 0 if rank is None else rank + 1


def margin_reference(calibration: CopyCalibration | None, hits: list[Hit], *,
                     query_id: int | None = None) -> float | None:
    """The score the top result must clear by the margin: the `margin_rank`-th best among
    the hits, a catalogued query itself left out (None without a margin or that many)."""
    if calibration is None or calibration.margin_rank is None:
        return None
    rank = calibration.margin_rank
    scores = sorted((hit.score for hit in hits if hit.image_id != query_id), reverse=True)
    return scores[rank - 1] if len(scores) >= rank else None


def decide(calibration: CopyCalibration | None, hits: list[Hit], *,
           reference: float | None = None, query_id: int | None = None) -> list[Hit]:
    """Every hit with its `is_copy` decision (None when the space has no calibration); the
    top result is the first that is not the catalogued query itself."""
    if calibration is None:
        return [hit if hit.is_copy is None else replace(hit, is_copy=None) for hit in hits]
    others = [i for i, hit in enumerate(hits) if hit.image_id != query_id]
    top = np.zeros(len(hits), dtype=bool)
    top[others[:1]] = True
    called = copy_calls(
        calibration, np.array([hit.score for hit in hits], dtype=np.float64),
        np.array([-1 if hit.inliers is None else hit.inliers for hit in hits]), top=top,
        reference=np.full(len(hits), np.nan if reference is None else reference))
    return [replace(hit, is_copy=bool(call)) for hit, call in zip(hits, called, strict=True)]


def matched_keypoints(query: Image.Image, candidate: Image.Image, *,
                      cap: int = SHOWN_PAIRS) -> dict:
    """The verification of one pair as the "why it matched" view draws it: inlier and match
    counts, both images' sizes and at most `cap` inlier pairs [qx, qy, cx, cy], spread over
    all of them, in each image's own (original) pixels; a mirrored match is mapped back onto
    the unflipped query."""
    found = verify_pair(query, candidate)
    pairs = found.pairs.astype(np.float64)
    if found.mirrored and len(pairs):
        pairs[:, 0] = query.width - 1 - pairs[:, 0]
    if len(pairs) > cap:
        pairs = pairs[np.linspace(0, len(pairs) - 1, cap).round().astype(int)]
    return {"inliers": found.inliers, "matches": found.matches, "mirrored": found.mirrored,
            "query_size": list(query.size), "result_size": list(candidate.size),
            "pairs": np.round(pairs, 1).tolist()}
