"""Ingest one video: decode within the limits, sample frames (cuts and a clock), then one
transaction writes the video row and its frames as embedded image rows (`video_id`, `t`).

Every frame is decoded and sampled before anything is stored or written, so a corrupt or
truncated stream raises VideoRejected and leaves no row behind. Frames are kept as JPEG bytes
while the clip streams, not as pixels, so a long clip costs kilobytes per sampled frame."""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image as PILImage

from lookalike.retrieval.errors import VideoRejected
from lookalike.retrieval.images import sha256_hex
from lookalike.retrieval.video.decode import (
    VIDEO_SUFFIXES,
    VideoInfo,
    VideoLimits,
    decode_frames,
    probe_video,
)
from lookalike.retrieval.video.sampling import SamplingPolicy, sample_frames
from lookalike.services.catalog import videos as video_queries
from lookalike.services.catalog.models import Image, Space, Video
from lookalike.services.catalog.schemas import VideoCreate
from lookalike.services.config import Settings
from lookalike.services.errors import VideoNotFound
from lookalike.services.ingest.metadata import check_metadata
from lookalike.services.ingest.pipeline import record_batch
from lookalike.services.ingest.prepare import PreparedImage, prepare_bytes, prepare_config
from lookalike.services.runtime import Runtime
from lookalike.services.spaces.fill import follow
from lookalike.services.spaces.lookup import ensure_default_space
from lookalike.services.storage.files import sync_originals, write_original
from lookalike.services.video.store import label_clip

log = logging.getLogger(__name__)

FRAME_JPEG_QUALITY = 92


@dataclass(frozen=True)
class SampledJpeg:
    """A sampled frame, kept as JPEG bytes, and its time in seconds."""

    t: float
    data: bytes


@dataclass(frozen=True)
class VideoResult:
    """The video row, whether this call created it, and how many frames it has."""

    video: Video
    created: bool
    frames: int


def is_video_path(path: Path) -> bool:
    """Whether a file's suffix names a video container that ingest accepts."""
    return path.suffix.lower() in VIDEO_SUFFIXES


def video_limits(settings: Settings) -> VideoLimits:
    return VideoLimits(max_bytes=settings.max_video_bytes, max_seconds=settings.max_video_seconds,
                       max_pixels=settings.max_pixels, max_frames=settings.max_video_frames)


def sampled_jpegs(data: bytes, settings: Settings) -> tuple[VideoInfo, list[SampledJpeg]]:
    """The clip's header facts, with the size its frames are shown at (upright: a rotated
    clip's width and height swap), and its sampled frames as JPEG bytes; VideoRejected on
    any limit, a corrupt stream or one cut short."""
    limits = video_limits(settings)
    info = probe_video(data, limits=limits)
    policy = SamplingPolicy(every_seconds=settings.video_every_s)
    frames, shown = [], (info.width, info.height)
    for frame in sample_frames(decode_frames(data, limits=limits), policy):
        shown = frame.image.size
        frames.append(SampledJpeg(frame.t, _jpeg(frame.image)))
    return replace(info, width=shown[0], height=shown[1]), frames


def _jpeg(image: PILImage.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=FRAME_JPEG_QUALITY)
    return buffer.getvalue()


def ingest_video_bytes(runtime: Runtime, data: bytes, *, source: str,
                       collection: str | None = None, label: str | None = None) -> VideoResult:
    """Add one video and its sampled frames, searchable when this returns; the same bytes
    again answer the existing video (created=False). Without a `label`, the default video
    classifier (when one was trained) gives the video its label and probability."""
    check_metadata(collection=collection, label=label)
    with runtime.session() as session:
        space = ensure_default_space(session=session, settings=runtime.settings)
        session.commit()
        existing = video_queries.get_video_by_sha(session=session, sha256=sha256_hex(data))
        if existing is not None:
            count = len(video_queries.video_frames(session=session, video_id=existing.id))
            return VideoResult(existing, created=False, frames=count)
    info, frames = sampled_jpegs(data, runtime.settings)
    guessed = (label_clip(runtime.settings, data, video_limits(runtime.settings))
               if label is None else None)
    prepared, vectors = _embed_frames(runtime, space, frames, source)
    stored = _store_clip(runtime.settings, data, info)
    row = VideoCreate(sha256=sha256_hex(data), source_uri=source, stored_path=stored,
                      byte_size=len(data), container=info.container, codec=info.codec,
                      width=info.width, height=info.height, fps=info.fps,
                      duration=info.duration, collection=collection,
                      label=guessed.label if guessed else label,
                      label_score=guessed.score if guessed else None)
    result = _record(runtime, space, row, prepared, vectors, frames, label)
    log.info("video %d (%s): %d frames", result.video.id, source, result.frames)
    return result


def _embed_frames(runtime: Runtime, space: Space, frames: list[SampledJpeg],
                  source: str) -> tuple[list[PreparedImage], list[np.ndarray]]:
    """Store each frame's JPEG as an original and embed it with the space's model."""
    embedder = runtime.embedder(space)
    config = prepare_config(runtime, embedder)
    prepared, tensors = [], []
    for position, frame in enumerate(frames):
        tensor, info = prepare_bytes(frame.data, position=position,
                                     source=f"{source}#t={frame.t:.3f}", config=config)
        if tensor is None:
            raise VideoRejected("decode_failed", f"frame at {frame.t:.3f} s: {info.error}")
        prepared.append(info)
        tensors.append(tensor)
    vectors: list[np.ndarray] = []
    step = runtime.settings.batch_size
    for start in range(0, len(tensors), step):
        vectors.extend(embedder.embed_tensors(torch.stack(tensors[start:start + step])))
    return prepared, vectors


def _store_clip(settings: Settings, data: bytes, info: VideoInfo) -> str:
    """Write the clip under videos/ (content-addressed) and make it and the frames durable."""
    sha = sha256_hex(data)
    path = settings.layout.videos / sha[:2] / sha[2:4] / f"{sha}.{info.container}"
    write_original(path, data)
    sync_originals(settings.layout.videos)
    sync_originals(settings.layout.originals)
    return settings.layout.stored(path)


def _record(runtime: Runtime, space: Space, row: VideoCreate, prepared: list[PreparedImage],
            vectors: list[np.ndarray], frames: list[SampledJpeg],
            label: str | None) -> VideoResult:
    """One transaction: the video row, its frames' image rows and vectors, their times."""
    jpegs = {info.sha256: frame.data for info, frame in zip(prepared, frames, strict=True)}
    with runtime.session() as session:
        video, created = video_queries.add_video(session=session, data=row)
        if not created:
            session.rollback()
            count = len(video_queries.video_frames(session=session, video_id=video.id))
            return VideoResult(video, created=False, frames=count)
        outcomes = record_batch(session, space=space, prepared=prepared, vectors=vectors,
                                items=[None] * len(prepared), reread=lambda i: jpegs[i.sha256],
                                layout=runtime.settings.layout, collection=row.collection,
                                label=label)
        times = {o.image_id: frame.t for o, frame in zip(outcomes, frames, strict=True)
                 if o.image_id is not None and o.status == "added"}
        video_queries.attach_frames(session=session, video_id=video.id, times=times)
        session.commit()
        session.refresh(video)
    follow(runtime, image_ids=sorted(times), written=space.id)
    with runtime.read_session() as session:
        runtime.replica(space, session=session)
    return VideoResult(video, created=True, frames=len(times))


MEDIA_TYPES = {"mp4": "video/mp4", "avi": "video/x-msvideo", "mkv": "video/x-matroska"}


def get_video_with_frames(runtime: Runtime, video_id: int) -> tuple[Video, list[Image]]:
    """A catalogued video and its live frames in time order."""
    with runtime.session() as session:
        video = video_queries.get_video(session=session, video_id=video_id)
        if video is None:
            raise VideoNotFound(f"no video with id {video_id}")
        return video, video_queries.video_frames(session=session, video_id=video_id)


def video_file(runtime: Runtime, video_id: int) -> tuple[Path, str]:
    """The stored clip of a video and its media type (WebM files are Matroska's): the video
    row alone, read without waiting for a writer (a search with a clip among its hits asks)."""
    with runtime.read_session() as session:
        video = video_queries.get_video(session=session, video_id=video_id)
    if video is None:
        raise VideoNotFound(f"no video with id {video_id}")
    path = runtime.settings.layout.resolve(video.stored_path) if video.stored_path else None
    if path is None or not path.is_file():
        raise VideoNotFound(f"video {video_id}: its stored file {video.stored_path} is missing "
                            f"under {runtime.settings.layout.home}; ingest the clip again")
    return path, MEDIA_TYPES.get(video.container, "application/octet-stream")
