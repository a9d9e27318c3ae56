"""POST /v1/search by a catalogued id, answered without FastAPI's per-request machinery.

A search by id on a local catalog takes a few hundred microseconds of FAISS and catalog
work; FastAPI's dependency solving, parameter validation and response validation took as
long again (a profile of `lookalike bench speed`'s searches by id). This route answers
the plainest such request itself, `{"image_id": N}` with at most `k` and `space`, where
the search can run on the event loop (services/search/inline.py), through the same guard,
search function and response model. Every other request to the path, including every
malformed one, is handed to the FastAPI route with its body, so validation errors, OpenAPI
and every other option stay in one place.
"""

from __future__ import annotations

import json
import re
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, NoMatchFound
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lookalike.services.api.deps import MAX_ID
from lookalike.services.api.ratelimit import SEARCH_GUARD
from lookalike.services.api.routers.search import public_answer
from lookalike.services.api.schemas import SearchQuery, SearchResponse
from lookalike.services.search.inline import answers_inline
from lookalike.services.search.query import MAX_K, NO_FILTERS, search_vector

PATH = "/v1/search"
DECLINED = "lookalike.lean_declined"
LEAN_PARAMS = {"k", "space"}
PLAIN_K = re.compile(r"[1-9][0-9]{0,3}")
DEFAULT_K = str(SearchQuery.model_fields["k"].default)


class LeanSearchById(BaseRoute):
    """Matches POST /v1/search with a JSON body; answers it when it is a plain search by id
    that runs inline, else hands it, body included, back to `router` for the FastAPI route."""

    path = PATH  # the route label of the request's metrics and access log

    def __init__(self, router: ASGIApp) -> None:
        self.router = router

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if (scope["type"] == "http" and scope["method"] == "POST" and scope["path"] == PATH
                and not scope.get(DECLINED) and _is_json(scope)):
            return Match.FULL, {"route": self}
        return Match.NONE, {}

    def url_path_for(self, name: str, /, **path_params: str) -> object:
        raise NoMatchFound(name, path_params)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = await _whole_body(receive)
        replay = _replaying(body, receive)
        request = Request(scope, replay)
        plain = _plain_query(scope["query_string"], body)
        runtime = request.app.state.runtime
        if plain is None or not answers_inline(
                runtime, space_name=plain[2], image_id=plain[0], url=None, box=None,
                filters=NO_FILTERS, verify=None):
            scope[DECLINED] = True
            await self.router(scope, replay, send)
            return
        image_id, k, space = plain
        who = await SEARCH_GUARD.dependency(request)
        answer = public_answer(search_vector(runtime, space_name=space, k=k,
                                             image_id=image_id), who)
        content = SearchResponse.model_validate(answer).model_dump_json()
        await Response(content, media_type="application/json")(scope, replay, send)


def _is_json(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"content-type":
            return value.startswith(b"application/json")
    return False


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


def _plain_query(query_string: bytes, body: bytes) -> tuple[int, int, str | None] | None:
    """(image_id, k, space) of a request in the plain form, written as FastAPI reads it:
    a body of exactly {"image_id": N}, and at most one `k` (a plain number) and one `space`;
    None for anything else, so that FastAPI validates it."""
    pairs = parse_qsl(query_string.decode("latin-1"), keep_blank_values=True)
    params = dict(pairs)
    if len(params) != len(pairs) or not params.keys() <= LEAN_PARAMS:
        return None
    k_text = params.get("k", DEFAULT_K)
    if not PLAIN_K.fullmatch(k_text) or int(k_text) > MAX_K:
        return None
    try:
        document = json.loads(body)
    except ValueError:
        return None
    if not isinstance(document, dict) or document.keys() != {"image_id"}:
        return None
    image_id = document["image_id"]
    if type(image_id) is not int or not 1 <= image_id <= MAX_ID:
        return None
    return image_id, int(k_text), params.get("space")
