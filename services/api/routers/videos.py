"""/v1/videos: upload a clip (its sampled frames become searchable images), look one up with
its frames, and fetch its file with HTTP Range support so a browser's player can seek."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Path, Response, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse

from lookalike.services.api.auth import NEEDS_SEARCH, IdentityDep
from lookalike.services.api.deps import MAX_ID, RuntimeDep, read_limited, upload_source
from lookalike.services.api.ratelimit import IngestAccess
from lookalike.services.api.schemas import (
    ErrorResponse,
    VideoFrameListed,
    VideoPublic,
    VideoUploadResponse,
)
from lookalike.services.auth.keys import Identity
from lookalike.services.auth.redact import shown_source
from lookalike.services.auth.scopes import ADMIN, grants
from lookalike.services.catalog.models import Image, Video
from lookalike.services.ingest.metadata import COLLECTION_MAX, LABEL_MAX
from lookalike.services.ingest.videos import (
    get_video_with_frames,
    ingest_video_bytes,
    video_file,
)

router = APIRouter(prefix="/v1/videos", tags=["videos"])

VideoId = Annotated[int, Path(ge=1, le=MAX_ID, description="catalogued video id")]
ERRORS = {status: {"model": ErrorResponse} for status in (404, 413, 415, 416, 422)}


def _public(video: Video, frames: list[Image], who: Identity) -> VideoPublic:
    """The clip's facts and frames, its source shown in full only to an admin."""
    public = VideoPublic.model_validate(video)
    listed = [VideoFrameListed(image_id=f.id, t=round(f.t or 0.0, 3),
                               thumbnail_url=f"/v1/images/{f.id}/thumbnail") for f in frames]
    return public.model_copy(update={
        "source_uri": shown_source(public.source_uri, full=grants(who.scopes, ADMIN)),
        "file_url": f"/v1/videos/{video.id}/file", "frames": listed})


@router.post("", status_code=201, response_model=VideoUploadResponse, responses=ERRORS)
async def upload_video(response: Response, runtime: RuntimeDep, who: IngestAccess,
                       file: Annotated[UploadFile, File()],
                       collection: Annotated[str | None,
                                             Form(max_length=COLLECTION_MAX)] = None,
                       label: Annotated[str | None, Form(max_length=LABEL_MAX)] = None,
                       ) -> VideoUploadResponse:
    """Add a clip (mp4, mov, avi, mkv, webm): 201 when new, 200 with duplicate=true when the
    same bytes exist. Its frames (at each shot change and every LOOKALIKE_VIDEO_EVERY_S
    seconds) are searchable when this returns; a corrupt or cut-short stream is a 422 and
    leaves nothing behind."""
    data = await read_limited(file, runtime.settings.max_video_bytes,
                              setting="LOOKALIKE_MAX_VIDEO_BYTES")
    result = await run_in_threadpool(ingest_video_bytes, runtime, data,
                                     source=upload_source(file.filename),
                                     collection=collection, label=label)
    if not result.created:
        response.status_code = 200
    video, frames = await run_in_threadpool(get_video_with_frames, runtime, result.video.id)
    return VideoUploadResponse(**_public(video, frames, who).model_dump(),
                               duplicate=not result.created)


@router.get("/{video_id}", response_model=VideoPublic, responses=ERRORS,
            dependencies=[NEEDS_SEARCH])
def get_video(video_id: VideoId, runtime: RuntimeDep, who: IdentityDep) -> VideoPublic:
    """A clip's facts, class and frames (time order)."""
    video, frames = get_video_with_frames(runtime, video_id)
    return _public(video, frames, who)


@router.get("/{video_id}/file", response_class=FileResponse, responses=ERRORS,
            dependencies=[NEEDS_SEARCH])
def get_video_file(video_id: VideoId, runtime: RuntimeDep) -> FileResponse:
    """The clip's bytes; a `Range: bytes=a-b` request answers 206 with those bytes, a range
    past the end 416, so `<video src=...#t=12.5>` can start at a frame's second."""
    path, media_type = video_file(runtime, video_id)
    return FileResponse(path, media_type=media_type)
