"""POST /v1/search: by uploaded image (multipart `file`), or by catalogued id or image URL
(JSON)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import ValidationError

from lookalike.retrieval.errors import ImageRejected
from lookalike.services.api.auth import NEEDS_SEARCH, IdentityDep
from lookalike.services.api.deps import RuntimeDep, read_limited
from lookalike.services.api.ratelimit import SEARCH_RATE, UPLOAD_SLOT, charge_upload
from lookalike.services.api.schemas import ErrorResponse, SearchJsonRequest, SearchResponse
from lookalike.services.auth.redact import shown_source
from lookalike.services.auth.scopes import ADMIN, grants
from lookalike.services.errors import InvalidRequest
from lookalike.services.search.filters import HitFilter
from lookalike.services.search.query import search_vector

router = APIRouter(prefix="/v1", tags=["search"], dependencies=[NEEDS_SEARCH, SEARCH_RATE,
                                                                 UPLOAD_SLOT])

REQUEST_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {"type": "object", "required": ["file"],
                           "properties": {"file": {"type": "string", "format": "binary"}}}},
            "application/json": {"schema": SearchJsonRequest.model_json_schema()},
        },
    }
}


@router.post("/search", response_model=SearchResponse, openapi_extra=REQUEST_BODY,
             responses={413: {"model": ErrorResponse}, 415: {"model": ErrorResponse},
                        422: {"model": ErrorResponse}, 404: {"model": ErrorResponse},
                        502: {"model": ErrorResponse}})
async def search(request: Request, runtime: RuntimeDep, who: IdentityDep,
                 k: Annotated[int, Query(ge=1, le=1000)] = 10,
                 space: str | None = None,
                 qe: Annotated[bool | None, Query(description="α-query expansion; "
                                                  "default: the space's setting")] = None,
                 dba: Annotated[bool | None, Query(description="database-side augmentation "
                                                   "(re-ranks a shortlist); default: the "
                                                   "space's setting")] = None,
                 collection: Annotated[str | None, Query(
                     description="only images of this collection")] = None,
                 label: Annotated[str | None, Query(
                     description="only images with this label")] = None,
                 ) -> dict:
    """The k catalogued images most like the query, best first."""
    hit_filter = HitFilter(collection=collection, label=label)
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        form = await request.form()
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise InvalidRequest("multipart search needs a file field named 'file'")
        data = await read_limited(upload, runtime.settings.max_upload_bytes)
        result = await run_in_threadpool(search_vector, runtime, space_name=space, k=k,
                                         query=data, qe=qe, dba=dba, hit_filter=hit_filter)
    elif content_type.startswith("application/json"):
        try:
            body = SearchJsonRequest.model_validate_json(await request.body())
        except ValidationError as exc:
            raise InvalidRequest("JSON search body must be {\"image_id\": int} or "
                                 f"{{\"url\": \"http(s)://...\"}}: {exc}") from exc
        if body.url is not None:
            charge_upload(request, who)
        result = await run_in_threadpool(search_vector, runtime, space_name=space, k=k,
                                         image_id=body.image_id, url=body.url, qe=qe, dba=dba,
                                         hit_filter=hit_filter)
    else:
        raise ImageRejected("not_an_image", "send multipart/form-data with a 'file' field, "
                            f"or application/json with an image_id or a url; got "
                            f"'{content_type}'")
    answer = result.to_public()
    full = grants(who.scopes, ADMIN)
    for hit in answer["results"]:
        hit["source"] = shown_source(hit["source"], full=full)
    return answer
