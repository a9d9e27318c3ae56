"""Refuse an oversized request body from its declared length, before any of it is read."""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Receive, Scope, Send

MULTIPART_OVERHEAD = 64 * 1024


class BodyLimit:
    """ASGI middleware: 413 with a JSON error when Content-Length exceeds the upload limit."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = dict(scope["headers"])
            declared = headers.get(b"content-length", b"")
            if declared.isdigit() and int(declared) > self.max_bytes + MULTIPART_OVERHEAD:
                await self._refuse(send, int(declared))
                return
        await self.app(scope, receive, send)

    async def _refuse(self, send: Send, declared: int) -> None:
        body = json.dumps({
            "error": "too_many_bytes",
            "detail": f"request body is {declared} bytes; uploads are limited to "
                      f"{self.max_bytes} bytes (LOOKALIKE_MAX_UPLOAD_BYTES)",
        }).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})
