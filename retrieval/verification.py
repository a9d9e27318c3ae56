"""Local-feature verification: do two images show the same picture under a geometric model?

SIFT keypoints (OpenCV) of both images are matched with Lowe's ratio test and checked with a
RANSAC homography; the number of inliers says how much of one image maps onto the other. A
copy keeps tens to hundreds of inliers through crops, frames, rotations and perspective; two
different photos keep a handful at most. The query is also matched mirrored, since SIFT
descriptors do not survive a flip.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np
from PIL import Image, ImageOps

__all__ = ["NO_MATCH", "LocalFeatures", "Verification", "extract_features", "query_views",
           "verify_features", "verify_pair", "verify_views"]

MIN_MATCHES = 4
MIN_AREA_SCALE = 1 / 200


@dataclass(frozen=True)
class LocalFeatures:
    """Keypoint positions (N, 2) float32 in the image's own pixels and descriptors (N, 128)."""

    points: np.ndarray
    descriptors: np.ndarray
    size: tuple[int, int]

    def __len__(self) -> int:
        return int(self.points.shape[0])


@dataclass(frozen=True)
class Verification:
    """The RANSAC outcome: inlier count, ratio-test matches and the inlier point pairs.

    `pairs` is (K, 4) float32: query x, y then candidate x, y; `mirrored` says the query was
    matched left-right flipped (its x then counts in the flipped image); `homography` (3, 3)
    maps the (possibly flipped) query's pixels onto the candidate's, None without a fit."""

    inliers: int
    matches: int
    pairs: np.ndarray
    mirrored: bool = False
    homography: np.ndarray | None = None


NO_MATCH = Verification(0, 0, np.zeros((0, 4), np.float32))


def _grey(image: Image.Image, max_side: int) -> tuple[np.ndarray, float]:
    """The image as uint8 grey no larger than max_side, and the factor back to its pixels."""
    scale = min(1.0, max_side / max(image.size))
    if scale < 1.0:
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        image = image.resize(size, Image.Resampling.BILINEAR)
    return np.asarray(image.convert("L"), dtype=np.uint8), 1.0 / scale


def extract_features(image: Image.Image, *, max_side: int = 512,
                     max_features: int = 1000) -> LocalFeatures:
    """SIFT keypoints and descriptors of `image` (shrunk to `max_side` first, for speed)."""
    grey, back = _grey(image, max_side)
    sift = cv2.SIFT_create(nfeatures=max_features)  # type: ignore[attr-defined]
    keypoints, descriptors = sift.detectAndCompute(grey, None)
    if descriptors is None or not keypoints:
        return LocalFeatures(np.zeros((0, 2), np.float32), np.zeros((0, 128), np.float32),
                             image.size)
    points = np.array([kp.pt for kp in keypoints], dtype=np.float32) * back
    return LocalFeatures(points, np.ascontiguousarray(descriptors, dtype=np.float32), image.size)


def _ratio_matches(query: LocalFeatures, candidate: LocalFeatures,
                   ratio: float) -> np.ndarray:
    """(M, 2) index pairs whose nearest candidate descriptor beats the second by `ratio`,
    at most one per candidate keypoint (its closest query keypoint)."""
    if len(query) < 2 or len(candidate) < 2:
        return np.zeros((0, 2), np.int64)
    knn = cv2.BFMatcher(cv2.NORM_L2).knnMatch(query.descriptors, candidate.descriptors, k=2)
    best: dict[int, tuple[float, int]] = {}
    for m in knn:
        passes = len(m) == 2 and m[0].distance < ratio * m[1].distance
        if passes and (m[0].trainIdx not in best or m[0].distance < best[m[0].trainIdx][0]):
            best[m[0].trainIdx] = (m[0].distance, m[0].queryIdx)
    kept = [(query_index, train) for train, (_, query_index) in sorted(best.items())]
    return np.array(kept, dtype=np.int64).reshape(-1, 2)


def _plausible(homography: np.ndarray, size: tuple[int, int]) -> bool:
    """Whether the homography maps the query onto a convex quad without an absurd scale:
    a degenerate fit (collapsing many points onto a few) is no evidence of a copy."""
    scale = abs(float(np.linalg.det(homography[:2, :2]))) / max(abs(homography[2, 2]), 1e-12)
    if not MIN_AREA_SCALE <= scale <= 1 / MIN_AREA_SCALE:
        return False
    width, height = size
    corners = np.array([[[0, 0]], [[width, 0]], [[width, height]], [[0, height]]], np.float32)
    quad = cv2.perspectiveTransform(corners, homography)
    return bool(np.isfinite(quad).all() and cv2.isContourConvex(quad.astype(np.float32)))


def verify_features(query: LocalFeatures, candidate: LocalFeatures, *, ratio: float = 0.8,
                    reprojection_px: float = 8.0) -> Verification:
    """Ratio-test matches of the two feature sets checked by a RANSAC homography."""
    pairs = _ratio_matches(query, candidate, ratio)
    if len(pairs) < MIN_MATCHES:
        return Verification(0, len(pairs), np.zeros((0, 4), np.float32))
    source, target = query.points[pairs[:, 0]], candidate.points[pairs[:, 1]]
    homography, mask = cv2.findHomography(source, target, cv2.RANSAC, reprojection_px,
                                          maxIters=2000, confidence=0.995)
    if homography is None or mask is None or not _plausible(homography, query.size):
        return Verification(0, len(pairs), np.zeros((0, 4), np.float32))
    keep = mask.ravel().astype(bool)
    return Verification(int(keep.sum()), len(pairs),
                        np.hstack([source[keep], target[keep]]).astype(np.float32),
                        homography=homography)


def query_views(query: Image.Image, *, mirrored: bool = True,
                max_side: int = 512) -> list[LocalFeatures]:
    """The query's features, and (with `mirrored`) those of its mirror image: extract once,
    verify against many candidates."""
    views = [extract_features(query, max_side=max_side)]
    if mirrored:
        views.append(extract_features(ImageOps.mirror(query), max_side=max_side))
    return views


def verify_views(views: list[LocalFeatures], candidate: LocalFeatures) -> Verification:
    """The best verification of any query view (the second one is the mirrored query)."""
    best = NO_MATCH
    for index, view in enumerate(views):
        found = verify_features(view, candidate)
        if found.inliers > best.inliers:
            best = replace(found, mirrored=index == 1)
    return best


def verify_pair(query: Image.Image, candidate: Image.Image, *, mirrored: bool = True,
                max_side: int = 512) -> Verification:
    """The query (and with `mirrored` its mirror image) verified against the candidate."""
    return verify_views(query_views(query, mirrored=mirrored, max_side=max_side),
                        extract_features(candidate, max_side=max_side))
