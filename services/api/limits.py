"""Request bodies within bounds: refused from their declared length before any is read, and
counted as they arrive when chunked (no Content-Length); JSON bodies have a smaller cap."""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lookalike.services.api.guards import refuse

MULTIPART_OVERHEAD = 64 * 1024


class BodyTooLarge(Exception):
    """Raised into the app when a chunked body passes its cap."""


class BodyLimit:
    """ASGI middleware: 413 with a JSON error when a body exceeds its cap: the upload limit
    (plus multipart framing) for uploads, `max_json_bytes` for JSON."""

    def __init__(self, app: ASGIApp, *, max_bytes: int, max_json_bytes: int,
                 path_caps: dict[str, tuple[int, str]] | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_json_bytes = max_json_bytes
        # upload routes with their own limit and its setting's name (videos)
        self.path_caps = path_caps or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        is_json = headers.get("content-type", "").startswith("application/json")
        upload_cap, upload_setting = self.path_caps.get(
            scope.get("path", ""), (self.max_bytes, "LOOKALIKE_MAX_UPLOAD_BYTES"))
        cap = self.max_json_bytes if is_json else upload_cap + MULTIPART_OVERHEAD
        setting = "LOOKALIKE_MAX_JSON_BYTES" if is_json else upload_setting
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > cap:
            await self._refuse(send, cap, setting)
            return
        started = False
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > cap:
                raise BodyTooLarge
            return message

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, tracked)
        except BodyTooLarge:
            if not started:
                await self._refuse(send, cap, setting)

    async def _refuse(self, send: Send, cap: int, setting: str) -> None:
        await refuse(send, 413, "too_many_bytes",
                     f"request body is over the limit of {cap} bytes ({setting})")
