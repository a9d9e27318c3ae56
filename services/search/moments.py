"""The moment of the winning clip, refined: after the global search has chosen the clip, its
frames are re-ranked by registering the still onto each of them (retrieval/video/moments.py),
and the clip's hit shows the frame that comes first, with its time.

Only the best-ranked clip among the results is refined, among its `moment_frames` frames
most like the query by the global vector, so the time it adds is bounded by that count."""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image
from sqlalchemy.orm import Session

from lookalike.retrieval.errors import ImageRejected
from lookalike.retrieval.video.moments import rank_frames
from lookalike.services.catalog import embeddings as embedding_queries
from lookalike.services.catalog import videos as video_queries
from lookalike.services.catalog.models import Image as ImageRow
from lookalike.services.catalog.models import Space
from lookalike.services.errors import ImageNotFound
from lookalike.services.runtime import Runtime
from lookalike.services.search.verify import stored_image
from lookalike.services.search.videos import FrameRef

if TYPE_CHECKING:
    from lookalike.services.search.query import Hit

logger = logging.getLogger(__name__)


def refine_enabled(runtime: Runtime, refine: bool | None) -> bool:
    """The request's choice, else the setting (LOOKALIKE_MOMENT_REFINE)."""
    return runtime.settings.moment_refine if refine is None else refine


def has_clip(hits: list[Hit]) -> bool:
    """Whether any hit is a frame of a clip (only then is the query decoded for this)."""
    return any(hit.video is not None for hit in hits)


def refined_moment(runtime: Runtime, session: Session, space: Space, vector: np.ndarray,
                  query: Image.Image, hits: list[Hit]) -> list[Hit]:
    """The hits with the first clip's hit moved to the frame of that clip ranked first by
    the global similarity and the aligned pixels together (unchanged when the still
    registers onto none of its frames)."""
    position = next((i for i, hit in enumerate(hits) if hit.video is not None), None)
    if position is None:
        return hits
    hit = hits[position]
    assert hit.video is not None
    candidates = _candidates(runtime, session, space, vector, hit.video.id)
    frames = [(row, score, image) for row, score in candidates
              if (image := _frame_image(runtime, row.id)) is not None]
    ranked = rank_frames(query, [image for _, _, image in frames],
                         [score for _, score, _ in frames])
    if not ranked or all(score.correlation is None for score in ranked):
        return hits
    row, score, _ = frames[ranked[0].index]
    inliers = ranked[0].inliers if hit.inliers is not None else None
    moved = _moved(hit, row, score, inliers)
    return [*hits[:position], moved, *hits[position + 1:]]


def _candidates(runtime: Runtime, session: Session, space: Space, vector: np.ndarray,
                video_id: int) -> list[tuple[ImageRow, float]]:
    """The clip's `moment_frames` live frames most like the query vector, best first."""
    rows = video_queries.video_frames(session=session, video_id=video_id)
    blobs = embedding_queries.vectors_of(session=session, space_id=space.id,
                                         image_ids=[row.id for row in rows])
    scored = [(row, float(np.frombuffer(blobs[row.id], dtype="<f4") @ vector.ravel()))
              for row in rows if row.id in blobs]
    scored.sort(key=lambda pair: -pair[1])
    return scored[:runtime.settings.moment_frames]


def _frame_image(runtime: Runtime, image_id: int) -> Image.Image | None:
    """A frame's stored JPEG (None, logged, when its file is gone: it is then not a
    candidate, as verification skips such files)."""
    try:
        return stored_image(runtime, image_id)
    except (ImageNotFound, ImageRejected):
        logger.warning("frame %s: stored file missing or unreadable, not compared", image_id)
        return None


def _moved(hit: Hit, row: ImageRow, score: float, inliers: int | None) -> Hit:
    """The clip's hit shown by another of its frames: that frame's id, score, time (and
    inliers when the search verified), first in the clip's frame list, the other frames
    found after it."""
    assert hit.video is not None
    first = FrameRef(image_id=row.id, t=row.t or 0.0, score=score)
    others = tuple(frame for frame in hit.video.frames if frame.image_id != row.id)
    video = replace(hit.video, t=first.t, frames=(first, *others))
    return replace(type(hit).of(row, score), inliers=inliers, video=video)
