"""JSON bodies that carry free text: read with a byte limit and strict UTF-8, so that a huge
body is a 413 and bytes that are not UTF-8 a clear 422, before any parsing."""

from __future__ import annotations

from typing import TypeVar

from fastapi import Request
from pydantic import BaseModel, ValidationError

from lookalike.services.errors import InvalidRequest, TextTooLong

Body = TypeVar("Body", bound=BaseModel)
JSON_OVERHEAD = 4096


async def read_text_body(request: Request, model: type[Body], *, max_text_bytes: int) -> Body:
    """The request's JSON body as `model`; TextTooLong past the limit (plus room for the
    JSON around the text), InvalidRequest for bytes that are not UTF-8 or a wrong shape."""
    limit = max_text_bytes + JSON_OVERHEAD
    received = bytearray()
    async for chunk in request.stream():
        received.extend(chunk)
        if len(received) > limit:
            raise TextTooLong(f"request body is over {limit} bytes; a text may be at most "
                              f"{max_text_bytes} bytes (LOOKALIKE_MAX_TEXT_BYTES)")
    try:
        body = bytes(received).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidRequest(f"request body is not valid UTF-8 (byte {exc.start}); send "
                             "UTF-8 encoded JSON") from exc
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        raise InvalidRequest(f"body does not fit {model.__name__}: {exc}") from exc
