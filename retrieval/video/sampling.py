"""Frame sampling for search: a frame at every shot change and at least one every N seconds,
with near-duplicates dropped, each kept frame carrying its time in seconds.

A shot change is a jump in the colour distribution between consecutive frames (the L1
distance of per-channel histograms of a small thumbnail), which ignores motion inside a shot.
The clock is a promise: no two kept frames are more than `every_seconds` apart, however still
the shot, because a still grabbed between two kept frames is answered with the time of one
of them (a slow drift or a fixed camera looks the same to a thumbnail for many seconds, yet
a search still tells its moments apart best from a frame within the clock's period). What is
deduplicated is the rest: a cut candidate whose thumbnail is almost the one of the frame kept
last is dropped (a flicker, a cut back to the same picture), and a cut that falls on a clock
tick gives one frame, not two.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from PIL import Image

from lookalike.retrieval.video.decode import VideoFrame

THUMB_SIZE = 32
HISTOGRAM_BINS = 16


@dataclass(frozen=True)
class SamplingPolicy:
    """When to keep a frame: cut threshold (0..1 histogram distance), clock period in
    seconds (the longest gap between kept frames), and the mean absolute thumbnail
    difference (0..1) below which a cut candidate is a copy of the frame kept last."""

    every_seconds: float = 2.0
    cut_threshold: float = 0.35
    duplicate_threshold: float = 0.008


@dataclass(frozen=True)
class SampledFrame:
    """A kept frame, its time in seconds and why it was kept ('start', 'cut' or 'clock')."""

    t: float
    image: Image.Image
    reason: str


@dataclass
class _Signature:
    """What the sampler compares between frames: a small thumbnail and its histograms."""

    thumb: npt.NDArray[np.float32]
    histogram: npt.NDArray[np.float32]


def sample_frames(frames: Iterable[VideoFrame], policy: SamplingPolicy) -> Iterator[SampledFrame]:
    """Keep the first frame, every frame after a cut that is not a near-copy of the frame
    kept last, and a frame at least every `policy.every_seconds` (a still shot too)."""
    previous: _Signature | None = None
    kept: _Signature | None = None
    kept_t = 0.0
    for frame in frames:
        current = _signature(frame.image)
        reason = _reason(previous, current, frame.t - kept_t, kept is None, policy)
        previous = current
        if reason is None or (reason == "cut" and kept is not None
                              and _is_copy(kept, current, policy)):
            continue
        kept, kept_t = current, frame.t
        yield SampledFrame(frame.t, frame.image, reason)


def cut_score(a: Image.Image, b: Image.Image) -> float:
    """The histogram distance between two frames, 0 (same colours) to 1 (disjoint)."""
    return _histogram_distance(_signature(a), _signature(b))


def _reason(
    previous: _Signature | None,
    current: _Signature,
    since_kept: float,
    first: bool,
    policy: SamplingPolicy,
) -> str | None:
    """Why this frame is a candidate, or None when it is not one."""
    if first or previous is None:
        return "start"
    if _histogram_distance(previous, current) >= policy.cut_threshold:
        return "cut"
    if since_kept >= policy.every_seconds:
        return "clock"
    return None


def _signature(image: Image.Image) -> _Signature:
    """A 32x32 RGB thumbnail in [0, 1] and its normalised per-channel histograms."""
    small = image.convert("RGB").resize((THUMB_SIZE, THUMB_SIZE), Image.Resampling.BILINEAR)
    thumb = np.asarray(small, dtype=np.float32) / 255.0
    bins = np.minimum((thumb * HISTOGRAM_BINS).astype(np.int64), HISTOGRAM_BINS - 1)
    counts = [np.bincount(bins[..., c].ravel(), minlength=HISTOGRAM_BINS) for c in range(3)]
    histogram = (np.concatenate(counts) / (THUMB_SIZE * THUMB_SIZE)).astype(np.float32)
    return _Signature(thumb, histogram)


def _histogram_distance(a: _Signature, b: _Signature) -> float:
    """Half the mean per-channel L1 distance: 0 for equal histograms, 1 for disjoint."""
    return float(np.abs(a.histogram - b.histogram).sum() / 6.0)


def _is_copy(kept: _Signature, current: _Signature, policy: SamplingPolicy) -> bool:
    return float(np.abs(kept.thumb - current.thumb).mean()) < policy.duplicate_threshold
