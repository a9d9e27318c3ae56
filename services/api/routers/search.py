"""POST /v1/search: by uploaded image (multipart `file`), or by catalogued id or image URL
(JSON)."""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import replace
from functools import partial
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool

from lookalike.retrieval.errors import ImageRejected
from lookalike.services.api.deps import RuntimeDep, read_limited
from lookalike.services.api.ratelimit import SearchAccess, charge_upload, held_upload_slot
from lookalike.services.api.schemas import ErrorResponse, SearchJsonRequest, SearchResponse
from lookalike.services.api.textbody import read_text_body
from lookalike.services.auth.redact import redact_hits
from lookalike.services.auth.scopes import ADMIN, grants
from lookalike.services.errors import InvalidRequest, TextTooLong
from lookalike.services.search.filters import Filters
from lookalike.services.search.inline import answers_inline
from lookalike.services.search.query import search_text, search_vector

# One dependency for the whole guard (ratelimit.guarded): the key, the search scope and the
# search budget; an upload slot is held only while an uploaded or fetched image is searched.
router = APIRouter(prefix="/v1", tags=["search"])

REQUEST_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {"type": "object",
                           "properties": {"file": {"type": "string", "format": "binary"},
                                          "text": {"type": "string"}}}},
            "application/json": {"schema": SearchJsonRequest.model_json_schema()},
        },
    }
}


@router.post("/search", response_model=SearchResponse, openapi_extra=REQUEST_BODY,
             responses={413: {"model": ErrorResponse}, 415: {"model": ErrorResponse},
                        422: {"model": ErrorResponse}, 404: {"model": ErrorResponse},
                        502: {"model": ErrorResponse}})
async def search(request: Request, runtime: RuntimeDep, who: SearchAccess,
                 k: Annotated[int, Query(ge=1, le=1000)] = 10,
                 space: str | None = None,
                 qe: Annotated[bool | None, Query(description="α-query expansion; "
                                                  "default: the space's setting")] = None,
                 dba: Annotated[bool | None, Query(description="database-side augmentation "
                                                   "(re-ranks a shortlist); default: the "
                                                   "space's setting")] = None,
                 topic: Annotated[str | None, Query(max_length=100)] = None,
                 collection: Annotated[str | None, Query(max_length=200)] = None,
                 label: Annotated[str | None, Query(max_length=200)] = None,
                 video_label: Annotated[str | None, Query(
                     max_length=200, description="only frames of videos with this label "
                     "(given at ingest or by the default video classifier)")] = None,
                 facets: Annotated[bool | None, Query(description="topic and label counts "
                                                      "over the candidates; default: when "
                                                      "the search is filtered")] = None,
                 verify: Annotated[bool | None, Query(description="re-rank the top "
                                                      "candidates by local-feature inliers; "
                                                      "default: the space's setting")] = None,
                 group_videos: Annotated[bool, Query(description="fold the frames of one "
                                                     "video into one result, best frame "
                                                     "first")] = True,
                 refine_moment: Annotated[bool | None, Query(
                     description="re-rank the best clip's frames by registering the still "
                     "onto them, so its `t` is the right second; default: "
                     "LOOKALIKE_MOMENT_REFINE (on)")] = None,
                 box: Annotated[str | None, Query(
                     max_length=200, description="x0,y0,x1,y1 in the query image's pixels: "
                     "search with that region of it")] = None,
                 scope: Annotated[Literal["images", "regions"], Query(
                     description="images: whole images; regions: the stored regions (boxes "
                     "from detectors or people), each result an image with its matching "
                     "regions, best first")] = "images",
                 ) -> dict:
    """The k catalogued images most like the query, best first. `text` alone is a ranked
    full-text search of titles and captions; with an image it restricts the similarity
    search to the images whose words hold every word of it. `topic`, `collection`,
    `label` and `video_label` restrict any search the same way (inside the index search: k
    results come back when k match). A filtered search, or one with `facets=true`, answers
    topic and label counts over all candidates."""
    content_type = request.headers.get("content-type", "")
    filters = Filters(topic=topic, collection=collection, label=label,
                      video_label=video_label)
    if content_type.startswith("multipart/form-data"):
        form = await request.form()
        upload, text = form.get("file"), form.get("text")
        if text is not None and not isinstance(text, str):
            raise InvalidRequest("the multipart field 'text' must be text, not a file")
        filters = replace(filters, text=text)
        if upload is None or isinstance(upload, str):
            if text is None:
                raise InvalidRequest("multipart search needs a file field named 'file' "
                                     "or a field named 'text'")
            _no_box(box)
            _no_region_scope(scope)
            result = await run_in_threadpool(search_text, runtime, k=k, filters=filters,
                                             facets=facets)
        else:
            async with held_upload_slot(request):
                data = await read_limited(upload, runtime.settings.max_upload_bytes)
                result = await run_in_threadpool(
                    search_vector, runtime, space_name=space, k=k, query=data, qe=qe,
                    dba=dba, filters=filters, facets=facets, verify=verify,
                    group_videos=group_videos, box=box, scope=scope,
                    refine_moment=refine_moment)
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
            _no_box(box)
            _no_region_scope(scope)
            result = await run_in_threadpool(search_text, runtime, k=k, filters=filters,
                                             facets=facets)
        else:
            search_now = partial(search_vector, runtime, space_name=space, k=k,
                                 image_id=body.image_id, url=body.url, qe=qe, dba=dba,
                                 filters=filters, facets=facets, verify=verify,
                                 group_videos=group_videos, box=box, scope=scope,
                                 refine_moment=refine_moment)
            light = answers_inline(runtime, space_name=space, image_id=body.image_id,
                                   url=body.url, box=box, filters=filters, verify=verify,
                                   scope=scope)
            if light:
                result = search_now()
            else:
                async with held_upload_slot(request) if body.url else nullcontext():
                    result = await run_in_threadpool(search_now)
    else:
        raise ImageRejected("not_an_image", "send multipart/form-data with a 'file' field, "
                            f"or application/json with an image_id or a url; got "
                            f"'{content_type}'")
    answer = result.to_public()
    redact_hits(answer["results"], full=grants(who.scopes, ADMIN))
    return answer


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
