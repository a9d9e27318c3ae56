"""/v1/explain: why a result matched a query, as heat maps over both images."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Query, UploadFile
from fastapi.concurrency import run_in_threadpool

from lookalike.services.api.auth import NEEDS_SEARCH
from lookalike.services.api.deps import ImageIdQuery, RuntimeDep, read_limited
from lookalike.services.api.ratelimit import SEARCH_RATE, UPLOAD_SLOT
from lookalike.services.api.schemas import ErrorResponse
from lookalike.services.runtime import Runtime
from lookalike.services.search.explain import explain_match
from lookalike.services.search.verify import decode_query, matched_keypoints, stored_image

router = APIRouter(prefix="/v1/explain", tags=["explain"],
                   dependencies=[NEEDS_SEARCH, SEARCH_RATE, UPLOAD_SLOT])

ERRORS = {status: {"model": ErrorResponse} for status in (404, 413, 415, 422)}
Keypoints = Annotated[bool, Query(description="also verify the pair (SIFT + RANSAC) and "
                                  "answer `keypoints`: inlier counts and up to 50 inlier "
                                  "pairs [qx, qy, rx, ry] in each image's original pixels")]


@router.get("", responses=ERRORS)
def explain_by_id(runtime: RuntimeDep, query: ImageIdQuery,
                  result: ImageIdQuery,
                  space: str | None = None, keypoints: Keypoints = False) -> dict:
    """Heat maps over a catalogued query and a result: where their similarity comes from."""
    answer = explain_match(runtime, query_id=query, result_id=result,
                           space_name=space).to_public()
    if keypoints:
        answer["keypoints"] = matched_keypoints(stored_image(runtime, query),
                                                stored_image(runtime, result))
    return answer


@router.post("", responses=ERRORS)
async def explain_upload(runtime: RuntimeDep, file: Annotated[UploadFile, File()],
                         result: ImageIdQuery,
                         space: str | None = None, keypoints: Keypoints = False) -> dict:
    """The same for an uploaded query image (multipart `file`), which is not stored."""
    data = await read_limited(file, runtime.settings.max_upload_bytes)
    explained = await run_in_threadpool(explain_match, runtime, query=data, result_id=result,
                                        space_name=space)
    answer = explained.to_public()
    if keypoints:
        answer["keypoints"] = await run_in_threadpool(_upload_keypoints, runtime, data, result)
    return answer


def _upload_keypoints(runtime: Runtime, data: bytes, result: int) -> dict:
    return matched_keypoints(decode_query(runtime, data), stored_image(runtime, result))
