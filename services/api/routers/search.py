"""POST /v1/search: by uploaded image (multipart `file`), or by catalogued id or image URL
(JSON)."""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import replace
from functools import partial
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool

from lookalike.retrieval.errors import ImageRejected
from lookalike.services.api.deps import (
    RuntimeDep,
    form_fields,
    form_or_json_body,
    read_limited,
)
from lookalike.services.api.ratelimit import SearchAccess, charge_upload, held_upload_slot
from lookalike.services.api.schemas import (
    ErrorResponse,
    SearchJsonRequest,
    SearchQuery,
    SearchResponse,
)
from lookalike.services.api.textbody import read_text_body
from lookalike.services.auth.keys import Identity
from lookalike.services.auth.redact import redact_hits
from lookalike.services.auth.scopes import ADMIN, grants
from lookalike.services.errors import InvalidRequest, TextTooLong
from lookalike.services.runtime import Runtime
from lookalike.services.search.filters import Filters
from lookalike.services.search.inline import answers_inline
from lookalike.services.search.query import SearchResult, search_text, search_vector

# One dependency for the whole guard (ratelimit.guarded): the key, the search scope and the
# search budget; an upload slot is held only while an uploaded or fetched image is searched.
router = APIRouter(prefix="/v1", tags=["search"])

FORM = {"file": {"type": "string", "format": "binary"}, "text": {"type": "string"}}
REQUEST_BODY = form_or_json_body(FORM, needs_one_of=("file", "text"),
                                 json_model=SearchJsonRequest)


@router.post("/search", response_model=SearchResponse, openapi_extra=REQUEST_BODY,
             responses={413: {"model": ErrorResponse}, 415: {"model": ErrorResponse},
                        422: {"model": ErrorResponse}, 404: {"model": ErrorResponse},
                        502: {"model": ErrorResponse}})
async def search(request: Request, runtime: RuntimeDep, who: SearchAccess,
                 params: Annotated[SearchQuery, Query()]) -> dict:
    """The k catalogued images most like the query, best first. `text` alone is a ranked
    full-text search of titles and captions; with an image it restricts the similarity
    search to the images whose words hold every word of it. `topic`, `collection`,
    `label` and `video_label` restrict any search the same way (inside the index search: k
    results come back when k match). A filtered search, or one with `facets=true`, answers
    topic and label counts over all candidates."""
    content_type = request.headers.get("content-type", "")
    filters = Filters(topic=params.topic, collection=params.collection, label=params.label,
                      video_label=params.video_label)
    if content_type.startswith("multipart/form-data"):
        fields = form_fields(await request.form(), tuple(FORM), what="a multipart search",
                             query=tuple(SearchQuery.model_fields))
        upload, text = fields.get("file"), fields.get("text")
        if text is not None and not isinstance(text, str):
            raise InvalidRequest("the multipart field 'text' must be text, not a file")
        filters = replace(filters, text=text)
        if upload is None or isinstance(upload, str):
            if text is None:
                raise InvalidRequest("multipart search needs a file field named 'file' "
                                     "or a field named 'text'")
            _no_box(params.box)
            _no_region_scope(params.scope)
            result = await run_in_threadpool(search_text, runtime, k=params.k,
                                             filters=filters, facets=params.facets)
        else:
            async with held_upload_slot(request):
                data = await read_limited(upload, runtime.settings.max_upload_bytes)
                result = await run_in_threadpool(
                    partial(_search_vector, runtime, params, filters, query=data))
    elif content_type.startswith("application/json"):
        try:
            body = await read_text_body(request, SearchJsonRequest,
                                        max_text_bytes=runtime.settings.max_text_bytes)
        except InvalidRequest as exc:
            if isinstance(exc, TextTooLong):
                raise
            raise InvalidRequest("JSON search body must be {\"image_id\": int}, "
                                 "{\"url\": \"http(s)://...\"} or {\"text\": \"words\"} (text "
                                 f"may go with either): {exc}") from exc
        filters = replace(filters, text=body.text)
        if body.url is not None:
            charge_upload(request, who)
        if body.image_id is None and body.url is None:
            _no_box(params.box)
            _no_region_scope(params.scope)
            result = await run_in_threadpool(search_text, runtime, k=params.k,
                                             filters=filters, facets=params.facets)
        else:
            search_now = partial(_search_vector, runtime, params, filters,
                                 image_id=body.image_id, url=body.url)
            light = answers_inline(runtime, space_name=params.space, image_id=body.image_id,
                                   url=body.url, box=params.box, filters=filters,
                                   verify=params.verify, scope=params.scope)
            if light:
                result = search_now()
            else:
                async with held_upload_slot(request) if body.url else nullcontext():
                    result = await run_in_threadpool(search_now)
    else:
        raise ImageRejected("not_an_image", "send multipart/form-data with a 'file' field, "
                            f"or application/json with an image_id or a url; got "
                            f"'{content_type}'")
    return public_answer(result, who)


def public_answer(result: SearchResult, who: Identity) -> dict:
    """The JSON answer, with sources redacted for a caller without the admin scope."""
    answer = result.to_public()
    redact_hits(answer["results"], full=grants(who.scopes, ADMIN))
    return answer


def _search_vector(runtime: Runtime, params: SearchQuery, filters: Filters, *,
                   query: bytes | None = None, image_id: int | None = None,
                   url: str | None = None) -> SearchResult:
    """search_vector with the request's query parameters."""
    return search_vector(runtime, space_name=params.space, k=params.k, query=query,
                         image_id=image_id, url=url, qe=params.qe, dba=params.dba,
                         filters=filters, facets=params.facets, verify=params.verify,
                         group_videos=params.group_videos, box=params.box, scope=params.scope,
                         refine_moment=params.refine_moment)


def _no_region_scope(scope: str) -> None:
    """A words-only search ranks captions: there are no regions to search."""
    if scope == "regions":
        raise InvalidRequest("scope=regions searches regions by image: send an image (file, "
                             "image_id or url), not only words")


def _no_box(box: str | None) -> None:
    """A words-only search has no query image to cut a box from."""
    if box is not None:
        raise InvalidRequest("box= cuts a region out of the query image: send an image "
                             "(file, image_id or url) with it, not only words")
