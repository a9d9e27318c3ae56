"""Typed dependencies: the process's runtime, bounded reads of uploaded files and the fields
of a multipart body."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Path, Query, Request, UploadFile
from pydantic import BaseModel
from starlette.datastructures import FormData

from lookalike.retrieval.errors import ImageRejected
from lookalike.services.auth.redact import UPLOAD
from lookalike.services.errors import InvalidRequest
from lookalike.services.runtime import Runtime

CHUNK = 1 << 20


async def get_runtime(request: Request) -> Runtime:
    """The process's runtime; async so that FastAPI does not hop to a worker thread for it."""
    return request.app.state.runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]

# Catalog ids are 64-bit: a larger number is a 422, never an overflow in the database driver.
MAX_ID = 2**63 - 1
ImageId = Annotated[int, Path(ge=1, le=MAX_ID, description="catalogued image id")]
JobId = Annotated[int, Path(ge=1, le=MAX_ID, description="job id")]
ImageIdQuery = Annotated[int, Query(ge=1, le=MAX_ID, description="catalogued image id")]


async def read_limited(upload: UploadFile, limit: int,
                       setting: str = "LOOKALIKE_MAX_UPLOAD_BYTES") -> bytes:
    """The upload's bytes, refusing to read more than `limit` (413 at the edge)."""
    chunks: list[bytes] = []
    size = 0
    while chunk := await upload.read(CHUNK):
        size += len(chunk)
        if size > limit:
            raise ImageRejected("too_many_bytes",
                                f"upload is larger than the limit of {limit} bytes "
                                f"({setting})")
        chunks.append(chunk)
    return b"".join(chunks)


def form_fields(form: FormData, allowed: tuple[str, ...], *, what: str,
                query: tuple[str, ...] = ()) -> dict[str, str | UploadFile]:
    """The multipart fields of `what` by name, each at most once and each one of `allowed`:
    a second file or a misspelt field name is a 422 that says so, not silently dropped, and
    one of the route's `query` parameters sent as a field is told where it goes."""
    fields: dict[str, str | UploadFile] = {}
    for name, value in form.multi_items():
        if name in query:
            raise InvalidRequest(f"{what} takes {name!r} as a query parameter, not a "
                                 f"multipart field: add ?{name}=... to the URL")
        if name not in allowed:
            raise InvalidRequest(f"{what} takes the multipart fields {', '.join(allowed)}; "
                                 f"got a field named {name!r}")
        if name in fields:
            raise InvalidRequest(f"{what} takes one {name!r} field; got several")
        fields[name] = value
    return fields


def form_or_json_body(form: dict[str, dict[str, Any]], *, needs_one_of: tuple[str, ...],
                      json_model: type[BaseModel]) -> dict[str, Any]:
    """The OpenAPI request body (`openapi_extra`) of a route that reads either the multipart
    fields `form` (name: schema), through form_fields, or a JSON `json_model`: no other field,
    and at least one of `needs_one_of`, so that clients generated from the schema, and the
    API fuzzer, send what the route takes."""
    schema: dict[str, Any] = {"type": "object", "properties": form,
                              "additionalProperties": False}
    if len(needs_one_of) == 1:
        schema["required"] = list(needs_one_of)
    else:
        schema["anyOf"] = [{"required": [name]} for name in needs_one_of]
    return {"requestBody": {"required": True, "content": {
        "multipart/form-data": {"schema": schema},
        "application/json": {"schema": json_model.model_json_schema()}}}}


def upload_source(filename: str | None) -> str:
    """The source an uploaded file is recorded under: the file name the client sent, with
    control characters (a NUL, a line break) percent-encoded as a browser sends them."""
    name = filename or "unnamed"
    return UPLOAD + "".join(f"%{ord(c):02X}" if ord(c) < 0x20 or ord(c) == 0x7F else c
                            for c in name)
