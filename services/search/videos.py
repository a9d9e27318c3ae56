"""Video frames among search hits: each frame hit carries its clip (`video: {id, t,
duration}`), and, when grouping, the frames of one clip fold into one hit per clip (the best
frame first, the others listed under it), so k results are k different clips or images."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from lookalike.services.catalog import videos as video_queries
from lookalike.services.catalog.models import Video

if TYPE_CHECKING:
    from lookalike.services.runtime import Runtime
    from lookalike.services.search.query import Hit

# A grouped search asks the index for this many times k hits, so that k distinct clips or
# images are left after the frames of each clip are folded together.
GROUP_OVERFETCH = 4


@dataclass(frozen=True)
class FrameRef:
    """One frame of a clip among the hits: its image id, time and score."""

    image_id: int
    t: float
    score: float


@dataclass(frozen=True)
class VideoRef:
    """The clip a frame hit belongs to, the hit frame's time, and the clip's frames found."""

    id: int
    t: float
    duration: float
    label: str | None
    frames: tuple[FrameRef, ...]

    def to_public(self) -> dict:
        return {"id": self.id, "t": round(self.t, 3), "duration": round(self.duration, 3),
                "label": self.label, "file_url": f"/v1/videos/{self.id}/file",
                "frames": [{"image_id": f.image_id, "t": round(f.t, 3),
                            "score": round(f.score, 6)} for f in self.frames]}


def has_videos(session: Session) -> bool:
    """Whether the catalog holds any video (grouping then needs more hits than k)."""
    return bool(session.scalar(select(exists().where(Video.id.is_not(None)))))


def fetch_size(runtime: Runtime, session: Session, k: int, *, group: bool, most: int) -> int:
    """How many hits to ask the index for to answer k after grouping."""
    if not group or not runtime.fresh("has_videos", lambda: has_videos(session),
                                      session=session):
        return k
    return min(most, k * GROUP_OVERFETCH)


def with_videos(session: Session, hits: list[Hit], *, group: bool, k: int) -> list[Hit]:
    """The hits with their clips attached; grouped by clip (best frame first) when `group`;
    at most k."""
    ids = sorted({hit.video_id for hit in hits if hit.video_id is not None})
    videos = video_queries.videos_by_ids(session=session, ids=ids)
    if not videos:
        return hits[:k]
    if not group:
        return [_attach(hit, videos, (_frame(hit),)) for hit in hits[:k]]
    frames: dict[int, list[FrameRef]] = {}
    firsts: list[Hit] = []
    for hit in hits:
        if hit.video_id in videos and hit.video_id in frames:
            frames[hit.video_id].append(_frame(hit))
            continue
        if hit.video_id in videos:
            frames[hit.video_id] = [_frame(hit)]
        firsts.append(hit)
    return [_attach(hit, videos, tuple(frames.get(hit.video_id or 0, ())))
            for hit in firsts[:k]]


def _frame(hit: Hit) -> FrameRef:
    return FrameRef(image_id=hit.image_id, t=hit.t or 0.0, score=hit.score)


def _attach(hit: Hit, videos: dict[int, Video], frames: tuple[FrameRef, ...]) -> Hit:
    video = videos.get(hit.video_id) if hit.video_id is not None else None
    if video is None:
        return hit
    ref = VideoRef(id=video.id, t=hit.t or 0.0, duration=video.duration, label=video.label,
                   frames=frames)
    return replace(hit, video=ref)
