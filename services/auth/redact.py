"""What a caller without the admin scope may see of where an image came from: a URL without
its credentials, query or fragment; a server path or an upload by its file name alone."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import PurePosixPath
from urllib.parse import urlsplit, urlunsplit

UPLOAD = "upload:"


def shown_source(source: str | None, *, full: bool) -> str | None:
    """`source` as shown to a caller; everything when `full` (an admin)."""
    if source is None or full:
        return source
    if source.startswith(UPLOAD):
        return UPLOAD + PurePosixPath(source[len(UPLOAD):]).name
    parts = urlsplit(source)
    if parts.scheme in ("http", "https") and parts.hostname:
        host = parts.hostname if parts.port is None else f"{parts.hostname}:{parts.port}"
        return urlunsplit((parts.scheme, host, parts.path, "", ""))
    return PurePosixPath(source).name


def redact_hits(hits: Iterable[dict], *, full: bool) -> None:
    """Each public search or copy hit's `source`, as shown to the caller, in place."""
    for hit in hits:
        hit["source"] = shown_source(hit["source"], full=full)
