"""Which of one clip's frames a still shows: a finer comparison than one vector per frame.

A global descriptor tells clips apart, but not always the moments of one shot: a fixed camera
on a tree in the wind or on a street gives frames seconds apart whose vectors differ as much
as frames a minute apart. Here the still is registered onto each candidate frame (SIFT
matches checked by a RANSAC homography, retrieval/verification.py), warped into the frame's
geometry, and the two grey images are compared pixel by pixel (normalised cross-correlation
over their overlap): with the geometry fixed, what is left to differ is what moved between
the moments, the leaves or the passers-by.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image, ImageOps

from lookalike.retrieval.verification import (
    Verification,
    extract_features,
    query_views,
    verify_views,
)

__all__ = ["MomentScore", "aligned_correlation", "rank_frames"]


@dataclass(frozen=True)
class MomentScore:
    """A candidate frame (its position among those given), the inliers of the still on it,
    the correlation of the aligned grey images (None: the still did not register), the
    fused score the frames are ranked by, and whether the still's mirror image registered."""

    index: int
    inliers: int
    correlation: float | None
    score: float
    mirrored: bool = False


def _grey(image: Image.Image, side: int) -> tuple[np.ndarray, float]:
    """The image as float32 grey no larger than `side`, and its scale from the original."""
    scale = min(1.0, side / max(image.size))
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    grey = np.asarray(image.convert("L"), dtype=np.float32)
    return cv2.resize(grey, size, interpolation=cv2.INTER_AREA), scale


def aligned_correlation(query: Image.Image, frame: Image.Image, found: Verification, *,
                        side: int = 160, min_overlap: float = 0.25) -> float | None:
    """The normalised cross-correlation (-1..1) of the frame and the query warped onto it by
    the verification's homography, both at most `side` pixels, times the share of the warped
    query that falls inside the frame (a frame that shows only part of the still explains
    only that part); None without a homography or when the warped query covers less than
    `min_overlap` of the frame."""
    if found.homography is None:
        return None
    shown = ImageOps.mirror(query) if found.mirrored else query
    still, query_scale = _grey(shown, side)
    target, frame_scale = _grey(frame, side)
    homography = (np.diag([frame_scale, frame_scale, 1.0]) @ found.homography
                  @ np.diag([1 / query_scale, 1 / query_scale, 1.0]))
    size = (target.shape[1], target.shape[0])
    warped = cv2.warpPerspective(still, homography, size, flags=cv2.INTER_LINEAR)
    cover = cv2.warpPerspective(np.ones_like(still), homography, size, flags=cv2.INTER_NEAREST)
    mask = cv2.erode(cover, np.ones((3, 3), np.uint8)) > 0.5
    if mask.mean() < min_overlap:
        return None
    a = warped[mask] - warped[mask].mean()
    b = target[mask] - target[mask].mean()
    norm = float(np.sqrt((a * a).sum() * (b * b).sum()))
    if norm == 0:
        return None
    return float((a * b).sum() / norm) * _inside(homography, still.shape, target.shape)


def _inside(homography: np.ndarray, query_shape: tuple[int, ...],
            frame_shape: tuple[int, ...]) -> float:
    """The share (0..1) of the warped query's quad that lies inside the frame's rectangle:
    exact geometry, so a still wholly inside its frame scores 1 whatever the pixel grid."""
    def quad(shape: tuple[int, ...]) -> np.ndarray:
        height, width = shape[:2]
        return np.array([[0, 0], [width, 0], [width, height], [0, height]], np.float32)
    warped = cv2.perspectiveTransform(quad(query_shape)[None], homography)[0]
    area = abs(cv2.contourArea(warped))
    if area <= 0:
        return 0.0
    common, _ = cv2.intersectConvexConvex(warped, quad(frame_shape))
    return min(1.0, float(common) / area)


def rank_frames(query: Image.Image, frames: Sequence[Image.Image],
                similarities: Sequence[float], *, pixel_weight: float = 2.0,
                max_side: int = 320, min_inliers: int = 10, side: int = 160,
                mirrored: bool = True) -> list[MomentScore]:
    """The frames best first by a weighted sum of two standardised scores (each minus its
    mean over the frames, over its spread): the global `similarities` of the frames to the
    query, and, `pixel_weight` times, the correlation of the still aligned onto each (a frame
    it does not register onto, with fewer than `min_inliers`, counts as the lowest
    correlation). Where the aligned pixels set one frame apart (a fixed camera on moving
    leaves) the correlation decides; where they do not (noise, light changing over a whole
    scene), the global similarity keeps a say.
    Features are taken at `max_side` pixels, the correlation at `side`; the still's mirror
    image is tried too unless not `mirrored` (once known, trying it again only costs)."""
    if len(similarities) != len(frames):
        raise ValueError(f"{len(frames)} frames but {len(similarities)} similarities")
    views = query_views(query, mirrored=mirrored, max_side=max_side)
    inliers, correlations, flips = [], [], []
    for frame in frames:
        found = verify_views(views, extract_features(frame, max_side=max_side))
        inliers.append(found.inliers)
        flips.append(found.mirrored)
        correlations.append(aligned_correlation(query, frame, found, side=side)
                            if found.inliers >= min_inliers else None)
    known = [c for c in correlations if c is not None]
    floor = min(known, default=0.0)
    fused = (pixel_weight * _standardised([floor if c is None else c for c in correlations])
             + _standardised(similarities))
    scores = [MomentScore(i, inliers[i], correlations[i], float(fused[i]), flips[i])
              for i in range(len(frames))]
    return sorted(scores, key=lambda s: (-s.score, s.index))


def _standardised(values: Sequence[float]) -> np.ndarray:
    """The values minus their mean over their standard deviation (zeros when all equal)."""
    array = np.asarray(values, dtype=np.float64)
    spread = float(array.std())
    return (array - array.mean()) / spread if spread > 0 else np.zeros_like(array)
