"""ASGI middleware around every request: its id (X-Request-ID), access log line, metrics."""

from __future__ import annotations

import logging
import re
import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lookalike.services.api.logs import request_id
from lookalike.services.api.metrics import Metrics

log = logging.getLogger("lookalike.access")

HEADER = b"x-request-id"
_ACCEPTED_ID = re.compile(rb"[A-Za-z0-9._-]{1,64}")


def _route_of(scope: Scope) -> str:
    """The route template that served the request (bounded label values), not the raw path."""
    route = scope.get("route")
    if route is not None and hasattr(route, "path"):
        return route.path
    return "/static" if scope["path"].startswith("/static/") else "unmatched"


class RequestContext:
    """Gives each request an id (the caller's X-Request-ID when sane), returns it in the
    response header, logs one access line and records the request's metrics."""

    def __init__(self, app: ASGIApp, *, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        given = headers.get(HEADER, b"")
        rid = given.decode() if _ACCEPTED_ID.fullmatch(given) else uuid.uuid4().hex
        token = request_id.set(rid)
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (HEADER, rid.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - started
            route = _route_of(scope)
            self.metrics.observe(method=scope["method"], route=route, status=status,
                                 seconds=seconds,
                                 content_type=headers.get(b"content-type", b"").decode("latin-1"))
            log.info("%s %s %d %.1f ms", scope["method"], scope["path"], status, seconds * 1000,
                     extra={"method": scope["method"], "path": scope["path"], "route": route,
                            "status": status, "duration_ms": round(seconds * 1000, 3)})
            request_id.reset(token)
