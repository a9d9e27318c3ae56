"""Browser-facing defences, as ASGI middleware: security headers on every answer, a Host
allow-list against DNS rebinding, and a same-origin check on state-changing requests that a
foreign page could send without a CORS preflight (form posts, multipart uploads)."""

from __future__ import annotations

import json
from collections.abc import Sequence

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
       "media-src 'self' blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
       "form-action 'self'; frame-ancestors 'none'")
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
]
# FastAPI's /docs page starts Swagger UI with an inline script (its files are served here).
NO_CSP_PATHS = ("/docs",)
UNSAFE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


async def refuse(send: Send, status: int, error: str, detail: str) -> None:
    """Answer a JSON error without reaching the app."""
    body = json.dumps({"error": error, "detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class SecurityHeaders:
    """nosniff, no referrer, no framing and a strict Content-Security-Policy (no inline
    script, nothing from other hosts) on every answer."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = list(SECURITY_HEADERS)
        if not scope["path"].startswith(NO_CSP_PATHS):
            extra.append((b"content-security-policy", CSP.encode()))

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, with_headers)


class HostAndOrigin:
    """400 for a Host header not in the allow-list (a rebound DNS name pointing a browser at
    this server), and for a request with several Host or Origin headers (which one counts
    would depend on who reads it); 403 for a state-changing request whose Origin is neither
    this server nor an allowed CORS origin. An opaque origin (`null`: a sandboxed frame, a
    file, a data: URL) is foreign unless LOOKALIKE_CORS_ORIGINS lists "null": a sandboxed
    frame on any site could otherwise post an upload form here."""

    def __init__(self, app: ASGIApp, *, hosts: Sequence[str], cors_origins: Sequence[str]) -> None:
        self.app = app
        self.any_host = "*" in hosts
        self.hosts = {h.lower() for h in hosts}
        self.cors_origins = set(cors_origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        for name in ("host", "origin"):
            if (count := len(headers.getlist(name))) > 1:
                await refuse(send, 400, "ambiguous_header",
                             f"send one {name.title()} header; this request has {count}")
                return
        host = headers.get("host", "")
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        if not self.any_host and name.lower() not in self.hosts:
            await refuse(send, 400, "unknown_host",
                         f"this server does not answer to host {name!r}; "
                         "LOOKALIKE_ALLOWED_HOSTS lists the names it serves")
            return
        origin = headers.get("origin")
        if (scope["method"] in UNSAFE_METHODS and origin is not None
                and origin not in self.cors_origins and not _same_origin(origin, host, scope)):
            await refuse(send, 403, "cross_origin",
                         f"a page on {origin} may not change this server; "
                         "LOOKALIKE_CORS_ORIGINS lists the origins allowed to")
            return
        await self.app(scope, receive, send)


def _same_origin(origin: str, host: str, scope: Scope) -> bool:
    return origin == f"{scope.get('scheme', 'http')}://{host}"
