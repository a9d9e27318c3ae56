"""POST /v1/copies: is the uploaded (or catalogued) image a copy of catalogued ones?"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import ValidationError

from lookalike.retrieval.errors import ImageRejected
from lookalike.services.api.deps import (
    RuntimeDep,
    form_fields,
    form_or_json_body,
    read_limited,
)
from lookalike.services.api.ratelimit import SearchAccess, held_upload_slot
from lookalike.services.api.schemas import (
    CopiesJsonRequest,
    CopiesQuery,
    CopiesResponse,
    ErrorResponse,
)
from lookalike.services.auth.redact import redact_hits
from lookalike.services.auth.scopes import ADMIN, grants
from lookalike.services.errors import InvalidRequest
from lookalike.services.search.copies import find_copies

# One dependency for the whole guard (ratelimit.guarded): the key, the search scope and the
# search budget; an upload slot is held only while an uploaded image is read and checked.
router = APIRouter(prefix="/v1", tags=["search"])

FORM = {"file": {"type": "string", "format": "binary"}}
REQUEST_BODY = form_or_json_body(FORM, needs_one_of=("file",), json_model=CopiesJsonRequest)


async def _query(request: Request, runtime: RuntimeDep) -> dict:
    """The query as find_copies keywords: upload bytes or a catalogued image id."""
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        upload = form_fields(await request.form(), tuple(FORM), what="a multipart copy question",
                             query=tuple(CopiesQuery.model_fields)).get("file")
        if upload is None or isinstance(upload, str):
            raise InvalidRequest("multipart copy question needs a file field named 'file'")
        return {"query": await read_limited(upload, runtime.settings.max_upload_bytes)}
    if content_type.startswith("application/json"):
        try:
            body = CopiesJsonRequest.model_validate_json(await request.body())
        except ValidationError as exc:
            raise InvalidRequest("JSON copy question must be {\"image_id\": int}: "
                                 f"{exc.errors()[0]['msg']}") from None
        return {"image_id": body.image_id}
    raise ImageRejected("not_an_image", "send multipart/form-data with a 'file' field, or "
                        f"application/json with an image_id; got '{content_type}'")


@router.post("/copies", response_model=CopiesResponse, openapi_extra=REQUEST_BODY,
             responses={404: {"model": ErrorResponse}, 409: {"model": ErrorResponse},
                        413: {"model": ErrorResponse}, 415: {"model": ErrorResponse},
                        422: {"model": ErrorResponse}})
async def copies(request: Request, runtime: RuntimeDep, who: SearchAccess,
                 params: Annotated[CopiesQuery, Query()]) -> dict:
    """Whether the query is a copy of catalogued images, by the space's calibrated
    thresholds after local-feature verification: 'copy of image 42 (and 7)' or 'no copy'.
    What an ingest pipeline asks before storing a re-upload."""
    multipart = request.headers.get("content-type", "").startswith("multipart/form-data")
    async with held_upload_slot(request) if multipart else nullcontext():
        query = await _query(request, runtime)
        answer = (await run_in_threadpool(find_copies, runtime, space_name=params.space,
                                          k=params.k, **query)).to_public()
    redact_hits(answer["copies"], full=grants(who.scopes, ADMIN))
    return answer
