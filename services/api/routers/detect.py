"""POST /v1/detect (boxes on an upload) and GET /v1/images/{id}/regions (stored boxes)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Query, UploadFile
from fastapi.concurrency import run_in_threadpool

from lookalike.services.api.auth import NEEDS_SEARCH
from lookalike.services.api.deps import ImageId, RuntimeDep, read_limited
from lookalike.services.api.ratelimit import SEARCH_RATE, UPLOAD_SLOT
from lookalike.services.api.schemas import ErrorResponse
from lookalike.services.detection.regions import box_public, regions_of
from lookalike.services.detection.running import detect_bytes
from lookalike.services.errors import InvalidRequest

router = APIRouter(prefix="/v1", tags=["detect"], dependencies=[NEEDS_SEARCH])
ERRORS = {status: {"model": ErrorResponse} for status in (404, 413, 415, 422)}
Detector = Annotated[str | None, Query(max_length=63, description="a trained detector's name; "
                                       "default: LOOKALIKE_DETECTOR")]


@router.post("/detect", responses=ERRORS, dependencies=[SEARCH_RATE, UPLOAD_SLOT])
async def detect(runtime: RuntimeDep, file: Annotated[UploadFile, File()],
                 detector: Detector = None,
                 threshold: Annotated[float | None, Query(ge=0, le=1)] = None) -> dict[str, Any]:
    """The boxes (in the upload's pixels), labels and scores a detector finds; nothing is
    stored."""
    name = detector or runtime.settings.detector
    if name is None:
        raise InvalidRequest("name a detector (?detector=NAME; `lookalike detect list` shows "
                             "them) or set LOOKALIKE_DETECTOR")
    data = await read_limited(file, runtime.settings.max_upload_bytes)
    width, height, boxes = await run_in_threadpool(detect_bytes, runtime, data, name=name,
                                                   threshold=threshold)
    return {"detector": name, "width": width, "height": height,
            "boxes": [box_public(b) for b in boxes]}


@router.get("/images/{image_id}/regions", responses=ERRORS)
def image_regions(image_id: ImageId, runtime: RuntimeDep,
                  detector: Annotated[str | None, Query(max_length=100)] = None
                  ) -> dict[str, Any]:
    """A catalogued image's regions (boxes in its original pixels), best score first."""
    return regions_of(runtime, image_id, detector=detector)
