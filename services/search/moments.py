"""The moment of the winning clip, refined: after the global search has chosen the clip, its
frames are re-ranked by registering the still onto each of them (retrieval/video/moments.py),
and the clip's hit shows the frame that comes first, with its time.

Only the best-ranked clip among the results is refined, among its `moment_frames` frames
most like the query by the global vector, so the time it adds is bounded by that count.

The indexed frames are a sample (a clock of `video_every_s` and the cuts): a still grabbed
between two of them matches neither exactly, and in a shot that changes little the one it
resembles most can be seconds away. So the `moment_anchors` best re-ranked frames serve as
anchors: the stored clip is decoded around each (within `video_every_s`, at most
ANCHOR_FRAMES frames each), those frames are ranked by the still's aligned pixels, and the
moment is the time of the best of them; the hit keeps the indexed frame nearest that time."""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageOps
from sqlalchemy.orm import Session

from lookalike.retrieval.errors import ImageRejected, VideoRejected
from lookalike.retrieval.video.decode import VideoFrame, decode_span
from lookalike.retrieval.video.moments import MomentScore, rank_frames
from lookalike.services.catalog import embeddings as embedding_queries
from lookalike.services.catalog import videos as video_queries
from lookalike.services.catalog.models import Image as ImageRow
from lookalike.services.catalog.models import Space
from lookalike.services.errors import ImageNotFound, VideoNotFound
from lookalike.services.ingest.videos import video_file, video_limits
from lookalike.services.runtime import Runtime
from lookalike.services.search.verify import stored_image
from lookalike.services.search.videos import FrameRef, VideoRef

if TYPE_CHECKING:
    from lookalike.services.search.query import Hit

logger = logging.getLogger(__name__)

ANCHOR_FRAMES = 9  # decoded frames ranked around each anchor: one every 0.44 s at a 2 s clock


def refine_enabled(runtime: Runtime, refine: bool | None) -> bool:
    """The request's choice, else the setting (LOOKALIKE_MOMENT_REFINE)."""
    return runtime.settings.moment_refine if refine is None else refine


def has_clip(hits: list[Hit]) -> bool:
    """Whether any hit is a frame of a clip (only then is the query decoded for this)."""
    return any(hit.video is not None for hit in hits)


def refined_moment(runtime: Runtime, session: Session, space: Space, vector: np.ndarray,
                  query: Image.Image, hits: list[Hit]) -> list[Hit]:
    """The hits with the first clip's hit moved to the frame of that clip ranked first by
    the global similarity and the aligned pixels together, at the time of the decoded frame
    around the best anchors that the still matches best (unchanged when the still registers
    onto none of its frames)."""
    position = next((i for i, hit in enumerate(hits) if hit.video is not None), None)
    if position is None:
        return hits
    hit = hits[position]
    assert hit.video is not None
    scored = _scored_frames(session, space, vector, hit.video.id)
    frames = [(row, score, image) for row, score in scored[:runtime.settings.moment_frames]
              if (image := _frame_image(runtime, row.id)) is not None]
    ranked = rank_frames(query, [image for _, _, image in frames],
                         [score for _, score, _ in frames])
    if not ranked or all(score.correlation is None for score in ranked):
        return hits
    row, score, _ = frames[ranked[0].index]
    anchors = [frames[s.index][0].t or 0.0 for s in _registered(ranked)]
    shown = ImageOps.mirror(query) if ranked[0].mirrored else query
    moment = _decoded_moment(runtime, hit.video, shown, anchors[:runtime.settings.moment_anchors])
    if moment is not None:
        row, score = min(scored, key=lambda pair: abs((pair[0].t or 0.0) - moment))
    counted = {frames[s.index][0].id: s.inliers for s in ranked}
    inliers = counted.get(row.id) if hit.inliers is not None else None
    moved = _moved(hit, row, score, inliers, moment)
    return [*hits[:position], moved, *hits[position + 1:]]


def _scored_frames(session: Session, space: Space, vector: np.ndarray,
                   video_id: int) -> list[tuple[ImageRow, float]]:
    """The clip's live frames with their similarity to the query vector, best first."""
    rows = video_queries.video_frames(session=session, video_id=video_id)
    blobs = embedding_queries.vectors_of(session=session, space_id=space.id,
                                         image_ids=[row.id for row in rows])
    scored = [(row, float(np.frombuffer(blobs[row.id], dtype="<f4") @ vector.ravel()))
              for row in rows if row.id in blobs]
    scored.sort(key=lambda pair: -pair[1])
    return scored


def _registered(ranked: list[MomentScore]) -> list[MomentScore]:
    """The ranked frames the still registered onto, best first."""
    return [score for score in ranked if score.correlation is not None]


def _decoded_moment(runtime: Runtime, video: VideoRef, query: Image.Image,
                    anchors: list[float]) -> float | None:
    """The time of the frame, among those decoded from the stored clip around the anchors,
    that the still (turned as it registered onto the best indexed frame) matches best by its
    aligned pixels alone: a decoded frame has no vector, and the anchors were chosen with
    the global similarity already (None without anchors, when the clip cannot be read, or
    when the still registers onto none of them)."""
    if not anchors:
        return None
    decoded = _decoded_frames(runtime, video, anchors)
    ranked = _registered(rank_frames(query, [frame.image for frame in decoded],
                                     [0.0] * len(decoded), mirrored=False))
    return decoded[ranked[0].index].t if ranked else None


def _decoded_frames(runtime: Runtime, video: VideoRef, anchors: list[float]) -> list[VideoFrame]:
    """The frames of the stored clip within `video_every_s` of any anchor, at most
    ANCHOR_FRAMES per anchor's span (overlapping spans are decoded once); none, logged, when
    the clip's file is gone or unreadable."""
    every = runtime.settings.video_every_s
    try:
        path, _ = video_file(runtime, video.id)
        frames: list[VideoFrame] = []
        for start, end in _spans(anchors, every, video.duration):
            most = max(1, round(ANCHOR_FRAMES * (end - start) / (2 * every)))
            frames += decode_span(path, start=start, end=end,
                                  limits=video_limits(runtime.settings), most=most)
        return frames
    except (VideoNotFound, VideoRejected, OSError) as exc:
        logger.warning("video %s: its stored clip cannot be decoded (%s); the moment is that "
                       "of an indexed frame", video.id, exc)
        return []


def _spans(anchors: list[float], radius: float, duration: float) -> list[tuple[float, float]]:
    """The windows of `radius` seconds around the anchors, inside the clip (when its header
    declared a duration), merged where they overlap, in time order."""
    spans: list[tuple[float, float]] = []
    for t in sorted(anchors):
        start = max(0.0, t - radius)
        end = max(start, min(duration, t + radius)) if duration > 0 else t + radius
        if spans and start <= spans[-1][1]:
            spans[-1] = (spans[-1][0], max(spans[-1][1], end))
        else:
            spans.append((start, end))
    return spans


def _frame_image(runtime: Runtime, image_id: int) -> Image.Image | None:
    """A frame's stored JPEG (None, logged, when its file is gone: it is then not a
    candidate, as verification skips such files)."""
    try:
        return stored_image(runtime, image_id)
    except (ImageNotFound, ImageRejected):
        logger.warning("frame %s: stored file missing or unreadable, not compared", image_id)
        return None


def _moved(hit: Hit, row: ImageRow, score: float, inliers: int | None,
           moment: float | None) -> Hit:
    """The clip's hit shown by another of its frames: that frame's id, score, time (and
    inliers when the search verified), first in the clip's frame list, the other frames
    found after it; the clip's time is `moment` when a decoded frame gave one."""
    assert hit.video is not None
    first = FrameRef(image_id=row.id, t=row.t or 0.0, score=score)
    others = tuple(frame for frame in hit.video.frames if frame.image_id != row.id)
    video = replace(hit.video, t=first.t if moment is None else moment,
                    frames=(first, *others))
    return replace(type(hit).of(row, score), inliers=inliers, video=video)
