"""POST /v1/text/classify: the default (or a named) text model's topic for any text."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field, model_validator

from lookalike.services.api.auth import NEEDS_SEARCH
from lookalike.services.api.deps import RuntimeDep
from lookalike.services.api.ratelimit import SEARCH_RATE
from lookalike.services.api.schemas import ErrorResponse
from lookalike.services.api.textbody import read_text_body
from lookalike.services.requestbody import RequestBody
from lookalike.services.text.topics import classify_texts

router = APIRouter(prefix="/v1/text", tags=["text"], dependencies=[NEEDS_SEARCH, SEARCH_RATE])


class ClassifyRequest(RequestBody):
    """One text, or a list of texts, and optionally which text model to ask."""

    text: str | None = None
    texts: list[str] | None = Field(None, max_length=100)
    model: str | None = Field(None, description="a text model name; default: the default")

    @model_validator(mode="after")
    def _one_input(self) -> ClassifyRequest:
        if (self.text is None) == (self.texts is None):
            raise ValueError("give exactly one of 'text' and 'texts'")
        return self


class TopicAnswer(BaseModel):
    topic: str
    score: float
    confident: bool
    note: str | None
    scores: dict[str, float]


class ClassifyResponse(BaseModel):
    model: str
    classes: list[str]
    min_confidence: float
    results: list[TopicAnswer]


BODY = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": ClassifyRequest.model_json_schema()}}}}


@router.post("/classify", response_model=ClassifyResponse, openapi_extra=BODY,
             responses={status: {"model": ErrorResponse} for status in (404, 413, 422)})
async def classify(request: Request, runtime: RuntimeDep) -> dict[str, Any]:
    """The most probable topic of each text with its probability; `confident` is false (and
    `note` says so) below LOOKALIKE_TEXT_MIN_CONFIDENCE. 404 without a text model."""
    body = await read_text_body(request, ClassifyRequest,
                                max_text_bytes=runtime.settings.max_text_bytes)
    texts = [body.text] if body.text is not None else list(body.texts or [])
    return await run_in_threadpool(classify_texts, runtime, texts, model_name=body.model)
