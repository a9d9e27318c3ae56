"""Video rows: insert by sha256, lookups, and the frames (image rows) of a video."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from lookalike.services.catalog.models import Image, Video
from lookalike.services.catalog.schemas import VideoCreate


def add_video(*, session: Session, data: VideoCreate) -> tuple[Video, bool]:
    """Insert a video, or return the row that already has its sha256 (created=False); the
    unique key decides, inside a savepoint, as for images."""
    video = Video(**data.model_dump())
    try:
        with session.begin_nested():
            session.add(video)
    except IntegrityError:
        existing = get_video_by_sha(session=session, sha256=data.sha256)
        if existing is None:
            raise
        return existing, False
    return video, True


def get_video(*, session: Session, video_id: int) -> Video | None:
    """The video with this id, or None."""
    return session.get(Video, video_id)


def get_video_by_sha(*, session: Session, sha256: str) -> Video | None:
    """The video whose bytes have this sha256 (hex), or None."""
    return session.scalar(select(Video).where(Video.sha256 == sha256))


def videos_by_ids(*, session: Session, ids: Sequence[int]) -> dict[int, Video]:
    """The videos among `ids` that exist, keyed by id (to join frame hits with their clip)."""
    if not ids:
        return {}
    return {row.id: row for row in session.scalars(select(Video).where(Video.id.in_(ids)))}


def attach_frames(*, session: Session, video_id: int, times: dict[int, float]) -> None:
    """Mark image rows (id -> seconds) as frames of the video at those times."""
    for image_id, t in times.items():
        session.execute(update(Image).where(Image.id == image_id)
                        .values(video_id=video_id, t=t))


def video_frames(*, session: Session, video_id: int) -> list[Image]:
    """The live frames of a video in time order."""
    query = (select(Image).where(Image.video_id == video_id, Image.status == "embedded")
             .order_by(Image.t, Image.id))
    return list(session.scalars(query))


def videos_after(*, session: Session, after_id: int, limit: int) -> list[Video]:
    """A page of videos in id order, after `after_id` (backups walk them this way)."""
    query = select(Video).where(Video.id > after_id).order_by(Video.id).limit(limit)
    return list(session.scalars(query))
