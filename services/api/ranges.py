"""Range headers the file answers cannot honour are ignored, as RFC 9110 (section 14.2) says.

Starlette's FileResponse answered a Range header in another unit (`items=0-1`) or with an
invalid range (`bytes=5-1`, `bytes=abc`) with a plain-text 400. The RFC says a server MUST
ignore a range unit it does not understand and may ignore an invalid ranges-specifier: the
client then gets the whole file, 200, which every HTTP client can use. This middleware drops
such a header before the app sees it; a valid range that lies beyond the file still gets
Starlette's 416 with `Content-Range: bytes */size`.
"""

from __future__ import annotations

import re

from starlette.types import ASGIApp, Receive, Scope, Send

RANGE = b"range"
# One range-spec: first-last, first- or -suffix (digits only, optional spaces around).
_SPEC = re.compile(r"\s*(?:(\d+)\s*-\s*(\d*)|-\s*(\d+))\s*")


def valid_byte_ranges(value: str) -> bool:
    """Whether `value` is a `bytes=` ranges-specifier whose every range-spec is well formed
    (first <= last where both are given); empty list elements are allowed, as the RFC's
    list syntax allows them, but not a list of nothing."""
    unit, equals, ranges = value.partition("=")
    if not equals or unit.strip().lower() != "bytes":
        return False
    specs = [part for part in ranges.split(",") if part.strip()]
    for spec in specs:
        match = _SPEC.fullmatch(spec)
        if match is None:
            return False
        first, last, _ = match.groups()
        if first is not None and last and int(last) < int(first):
            return False
    return bool(specs)


class IgnoreBadRanges:
    """Removes a Range header that is not a valid byte range from GET and HEAD requests."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in ("GET", "HEAD"):
            headers: list[tuple[bytes, bytes]] = scope["headers"]
            if any(name == RANGE and not valid_byte_ranges(value.decode("latin-1"))
                   for name, value in headers):
                scope = {**scope, "headers": [(name, value) for name, value in headers
                                              if name != RANGE]}
        await self.app(scope, receive, send)
