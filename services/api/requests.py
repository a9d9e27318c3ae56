"""ASGI middleware around every request: its id (X-Request-ID), access log line, metrics, and
a JSON 500 naming the id when the request fails on an error nothing else handled."""

from __future__ import annotations

import logging
import re
import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lookalike.services.api.errors import error_body
from lookalike.services.api.logs import request_id
from lookalike.services.api.metrics import Metrics

log = logging.getLogger("lookalike.access")
failures = logging.getLogger("lookalike.api")

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
    response header, logs one access line and records the request's metrics (the count in
    flight included, from its first step to its last). An error no
    handler took is logged with its traceback and the id, and answered as JSON (`internal`)
    like every other error, rather than Starlette's plain-text page without the id."""

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
        response_started = False
        self.metrics.in_flight += 1

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status, response_started = message["status"], True
                message["headers"] = [*message.get("headers", []), (HEADER, rid.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            failures.exception("%s %s failed", scope["method"], scope["path"])
            if response_started:
                raise  # too late for an error body: the server closes the connection
            await error_body(500, "internal", f"the server failed on this request (request id "
                             f"{rid}); its log has the cause under that id"
                             )(scope, receive, send_with_id)
        finally:
            self.metrics.in_flight -= 1
            seconds = time.perf_counter() - started
            route = _route_of(scope)
            self.metrics.observe(method=scope["method"], route=route, status=status,
                                 seconds=seconds,
                                 content_type=headers.get(b"content-type", b"").decode("latin-1"))
            log.info("%s %s %d %.1f ms", scope["method"], scope["path"], status, seconds * 1000,
                     extra={"method": scope["method"], "path": scope["path"], "route": route,
                            "status": status, "duration_ms": round(seconds * 1000, 3)})
            request_id.reset(token)

