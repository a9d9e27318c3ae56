"""/v1/explain: why a result matched a query, as heat maps over both images."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, UploadFile
from fastapi.concurrency import run_in_threadpool

from lookalike.services.api.auth import NEEDS_SEARCH
from lookalike.services.api.deps import ImageIdQuery, RuntimeDep, read_limited
from lookalike.services.api.ratelimit import SEARCH_RATE, UPLOAD_SLOT
from lookalike.services.api.schemas import ErrorResponse
from lookalike.services.search.explain import explain_match

router = APIRouter(prefix="/v1/explain", tags=["explain"],
                   dependencies=[NEEDS_SEARCH, SEARCH_RATE, UPLOAD_SLOT])

ERRORS = {status: {"model": ErrorResponse} for status in (404, 413, 415, 422)}


@router.get("", responses=ERRORS)
def explain_by_id(runtime: RuntimeDep, query: ImageIdQuery,
                  result: ImageIdQuery,
                  space: str | None = None) -> dict:
    """Heat maps over a catalogued query and a result: where their similarity comes from."""
    return explain_match(runtime, query_id=query, result_id=result,
                         space_name=space).to_public()


@router.post("", responses=ERRORS)
async def explain_upload(runtime: RuntimeDep, file: Annotated[UploadFile, File()],
                         result: ImageIdQuery,
                         space: str | None = None) -> dict:
    """The same for an uploaded query image (multipart `file`), which is not stored."""
    data = await read_limited(file, runtime.settings.max_upload_bytes)
    explained = await run_in_threadpool(explain_match, runtime, query=data, result_id=result,
                                        space_name=space)
    return explained.to_public()
