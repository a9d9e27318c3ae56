"""Ingest a mixed list of files: images through the batched image pipeline, videos one by
one (services/ingest/videos.py), all reported in one summary."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from lookalike.retrieval.errors import ImageRejected, VideoRejected
from lookalike.services.errors import InvalidRequest
from lookalike.services.ingest.pipeline import (
    IngestSummary,
    Outcome,
    Progress,
    ingest_items,
)
from lookalike.services.ingest.sources import IngestItem
from lookalike.services.ingest.videos import ingest_video_bytes, is_video_path
from lookalike.services.runtime import Runtime


def ingest_media(runtime: Runtime, items: Sequence[IngestItem], *,
                 progress: Progress = lambda n: None) -> IngestSummary:
    """Ingest images and videos (told apart by suffix); a bad video is a failed outcome with
    the reason, like a bad image, and never stops the others."""
    images = [item for item in items if not is_video_path(item.path)]
    summary = ingest_items(runtime, images, progress=progress)
    for item in items:
        if is_video_path(item.path):
            summary.record(_ingest_video_file(runtime, item))
            progress(1)
    return summary


def _ingest_video_file(runtime: Runtime, item: IngestItem) -> Outcome:
    """One video file's outcome: added, duplicate, or failed with why."""
    source = str(item.path)
    try:
        data = _read_limited(item.path, runtime.settings.max_video_bytes)
        result = ingest_video_bytes(runtime, data, source=source, collection=item.collection,
                                    label=item.label)
    except (VideoRejected, ImageRejected, InvalidRequest) as rejected:
        return Outcome(source, "failed", None, str(rejected))
    except OSError as error:
        return Outcome(source, "failed", None, f"cannot read file: {error.strerror or error}")
    status = "added" if result.created else "duplicate"
    return Outcome(source, status, None, f"video {result.video.id}: {result.frames} frames",
                   video_id=result.video.id)


def _read_limited(path: Path, max_bytes: int) -> bytes:
    """A video file's bytes, refused before reading when it is over the limit."""
    size = path.stat().st_size
    if size > max_bytes:
        raise VideoRejected("too_many_bytes", f"video file is {size} bytes; the limit is "
                            f"{max_bytes} (LOOKALIKE_MAX_VIDEO_BYTES)")
    return path.read_bytes()
