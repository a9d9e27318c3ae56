"""POST /v1/search by a catalogued id or by an uploaded image, answered without FastAPI's
per-request machinery.

A search by id on a local catalog takes a few hundred microseconds of FAISS and catalog
work; FastAPI's dependency solving, parameter validation and response validation took as
long again (a profile of `lookalike bench speed`'s searches by id), and about a millisecond
of a search by upload beside decoding and one forward pass (a profile of its searches by
upload). This route answers the two plainest requests itself, through the same guard,
upload slot, search function and response model: `{"image_id": N}` where the search can
run on the event loop (services/search/inline.py), and a multipart body of one `file`
field; each with at most `k` and `space` in the query. Every other request to the path,
including every malformed one, is handed to the FastAPI route with its body, so validation
errors, OpenAPI and every other option stay in one place.
"""

from __future__ import annotations

import asyncio
import json
import re
from functools import partial
from typing import Any
from urllib.parse import parse_qsl

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, NoMatchFound
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lookalike.services.api.deps import MAX_ID, read_limited
from lookalike.services.api.metrics import Metrics
from lookalike.services.api.ratelimit import SEARCH_GUARD, held_upload_slot
from lookalike.services.api.routers.search import public_answer
from lookalike.services.api.schemas import SearchQuery, SearchResponse
from lookalike.services.search.inline import answers_inline
from lookalike.services.search.query import MAX_K, NO_FILTERS, search_vector

PATH = "/v1/search"
DECLINED = "lookalike.lean_declined"
LEAN_PARAMS = {"k", "space"}
JSON = "application/json"
LEAN_TYPES = (JSON, "multipart/form-data")
PLAIN_K = re.compile(r"[1-9][0-9]{0,3}")
DEFAULT_K = str(SearchQuery.model_fields["k"].default)


class LeanSearch(BaseRoute):
    """Matches POST /v1/search with a JSON or multipart body; answers it when it is a plain
    search by id that runs inline or a plain search by upload, else hands it, body included,
    back to `router` for the FastAPI route."""

    path = PATH  # the route label of the request's metrics and access log

    def __init__(self, router: ASGIApp) -> None:
        self.router = router

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if (scope["type"] == "http" and scope["method"] == "POST" and scope["path"] == PATH
                and not scope.get(DECLINED) and _content_type(scope).startswith(LEAN_TYPES)):
            return Match.FULL, {"route": self}
        return Match.NONE, {}

    def url_path_for(self, name: str, /, **path_params: str) -> object:
        raise NoMatchFound(name, path_params)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = await _whole_body(receive)
        replay = _replaying(body, receive)
        request = Request(scope, replay)
        params = _plain_params(scope["query_string"])
        if params is None:
            answer = None
        elif _content_type(scope).startswith(JSON):
            answer = await _by_id(request, body, params)
        else:
            answer = await _by_upload(request, params)
        if answer is None:
            scope[DECLINED] = True
            await self.router(scope, _replaying(body, receive), send)
            return
        content = SearchResponse.model_validate(answer).model_dump_json()
        await Response(content, media_type="application/json")(scope, replay, send)


async def _by_id(request: Request, body: bytes, params: tuple[int, str | None]
                 ) -> dict[str, Any] | None:
    """The answer to a body of exactly {"image_id": N} whose search runs inline; None for
    any other body."""
    image_id = _plain_image_id(body)
    k, space = params
    runtime = request.app.state.runtime
    if image_id is None or not answers_inline(
            runtime, space_name=space, image_id=image_id, url=None, box=None,
            filters=NO_FILTERS, verify=None):
        return None
    who = await SEARCH_GUARD.dependency(request)
    return public_answer(search_vector(runtime, space_name=space, k=k, image_id=image_id), who)


async def _by_upload(request: Request, params: tuple[int, str | None]) -> dict[str, Any] | None:
    """The answer to a multipart body of exactly one field, an uploaded `file`; None for any
    other body (one the form parser refuses included: the FastAPI route says why)."""
    try:
        form = await request.form()
    except (HTTPException, MultiPartException):
        return None
    try:
        fields = form.multi_items()
        if len(fields) != 1 or fields[0][0] != "file" or not isinstance(fields[0][1],
                                                                        UploadFile):
            return None
        k, space = params
        runtime = request.app.state.runtime
        who = await SEARCH_GUARD.dependency(request)
        async with held_upload_slot(request):
            data = await read_limited(fields[0][1], runtime.settings.max_upload_bytes)
            search = partial(search_vector, runtime, space_name=space, k=k, query=data)
            result = search() if await _alone(request) else await run_in_threadpool(search)
        return public_answer(result, who)
    finally:
        await form.close()


async def _alone(request: Request) -> bool:
    """Whether this is the only request the process is answering once every request already
    received has taken its first step. A lone search then runs on the event loop itself,
    sparing the hand-off to a thread and back (two thread wake-ups, about 0.25 ms on a VM);
    a request arriving meanwhile waits for it (a few milliseconds for a photo). With company,
    the search goes to a thread, where concurrent searches decode in parallel and share model
    calls (services/search/batching.py)."""
    await asyncio.sleep(0)
    metrics: Metrics = request.app.state.metrics
    return metrics.in_flight == 1


def _content_type(scope: Scope) -> str:
    headers: list[tuple[bytes, bytes]] = scope["headers"]
    for name, value in headers:
        if name == b"content-type":
            return value.decode("latin-1")
    return ""


async def _whole_body(receive: Receive) -> bytes:
    """The request body (BodyLimit, outside, caps it)."""
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replaying(body: bytes, receive: Receive) -> Receive:
    """A receive that gives `body` once, then waits on the connection (for a disconnect)."""
    given = False

    async def replay() -> Message:
        nonlocal given
        if given:
            return await receive()
        given = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


def _plain_params(query_string: bytes) -> tuple[int, str | None] | None:
    """(k, space) of a query string in the plain form, written as FastAPI reads it: at most
    one `k` (a plain number) and one `space`; None for anything else, so that FastAPI
    validates it."""
    pairs = parse_qsl(query_string.decode("latin-1"), keep_blank_values=True)
    params = dict(pairs)
    if len(params) != len(pairs) or not params.keys() <= LEAN_PARAMS:
        return None
    k_text = params.get("k", DEFAULT_K)
    if not PLAIN_K.fullmatch(k_text) or int(k_text) > MAX_K:
        return None
    return int(k_text), params.get("space")


def _plain_image_id(body: bytes) -> int | None:
    """N of a body of exactly {"image_id": N} with N a valid id; None for anything else
    (arrays nested deeper than Python's json parser recurses included)."""
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        return None
    if not isinstance(document, dict) or document.keys() != {"image_id"}:
        return None
    image_id = document["image_id"]
    if type(image_id) is not int or not 1 <= image_id <= MAX_ID:
        return None
    return image_id
