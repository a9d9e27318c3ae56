"""Downloading images by URL with a byte limit, never reading more than the limit."""

from __future__ import annotations

import httpx

from lookalike.retrieval.errors import ImageRejected
from lookalike.services.errors import FetchFailed

SCHEMES = ("http", "https")


def fetch_bytes(url: str, *, max_bytes: int, timeout: float) -> bytes:
    """The body of `url`; FetchFailed on network or HTTP errors, ImageRejected past max_bytes."""
    if httpx.URL(url).scheme not in SCHEMES:
        raise FetchFailed(f"cannot fetch {url!r}: only http and https URLs are accepted")
    try:
        with httpx.stream("GET", url, timeout=timeout, follow_redirects=True) as response:
            if response.status_code != 200:
                raise FetchFailed(f"GET {url} answered HTTP {response.status_code}")
            return _read_limited(response, url, max_bytes)
    except httpx.HTTPError as exc:
        raise FetchFailed(f"GET {url} failed: {exc}") from exc


def _read_limited(response: httpx.Response, url: str, max_bytes: int) -> bytes:
    declared = response.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise ImageRejected("too_many_bytes", f"{url} is {declared} bytes, over the limit of "
                            f"{max_bytes} (LOOKALIKE_MAX_UPLOAD_BYTES)")
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > max_bytes:
            raise ImageRejected("too_many_bytes", f"{url} is larger than the limit of "
                                f"{max_bytes} bytes (LOOKALIKE_MAX_UPLOAD_BYTES)")
        chunks.append(chunk)
    return b"".join(chunks)
