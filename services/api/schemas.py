"""Pydantic shapes of the HTTP API (the same JSON the CLI prints with --json)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, model_validator

from lookalike.services.catalog.documents import SpaceOptions


class SearchJsonRequest(BaseModel):
    """A JSON search names its query image: a catalogued id or an http(s) URL, not both."""

    image_id: int | None = Field(None, ge=1, le=2**63 - 1)
    url: str | None = Field(None, max_length=2048,
                            description="an http(s) image URL, fetched under the URL fetch "
                            "rules (public addresses, LOOKALIKE_FETCH_ALLOW)")

    @model_validator(mode="after")
    def _one_query(self) -> SearchJsonRequest:
        if (self.image_id is None) == (self.url is None):
            raise ValueError("give exactly one of 'image_id' and 'url'")
        return self


class SearchHitPublic(BaseModel):
    image_id: int
    score: float
    source: str
    label: str | None
    collection: str | None
    thumbnail_url: str


class SearchResponse(BaseModel):
    space: str
    took_ms: float
    qe: bool
    dba: bool
    results: list[SearchHitPublic]


class ImagePublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    sha256: str
    source_uri: str | None
    width: int | None
    height: int | None
    format: str | None
    byte_size: int | None
    status: str
    error: str | None
    collection: str | None
    label: str | None
    created_at: datetime | None


class ImageUploadResponse(ImagePublic):
    duplicate: bool
    thumbnail_url: str
    file_url: str


class ImageListed(ImagePublic):
    thumbnail_url: str


class ImagePage(BaseModel):
    items: list[ImageListed]
    offset: int
    limit: int
    next_offset: int | None


class EvaluationPublic(BaseModel):
    """A space's newest `lookalike evaluate` result."""

    benchmark: str
    map: float
    precision_at_1: float | None
    precision_at_10: float | None
    queries: int | None
    gallery: int | None
    evaluated_at: datetime


class SpacePublic(BaseModel):
    name: str
    backbone: str
    weights_sha256: str | None
    layer: str
    pooling: str
    whitening: str | None
    dim: int
    is_default: bool
    vector_count: int
    filled: bool = Field(description="ingest embeds every new image into this space (it is "
                         "the default, or was, or a reindex job filled it)")
    lag: int = Field(description="embedded catalog images this space has no vector of")
    options: SpaceOptions
    last_evaluation: EvaluationPublic | None = None


class SpaceDeleted(BaseModel):
    """What deleting a space removed: vectors, index files, and its whitening file and
    fine-tuned weight files where no other space uses them."""

    name: str
    vectors: int
    index_files: int
    whitening_file: str | None
    trained_files: list[str]


class ErrorResponse(BaseModel):
    error: str
    detail: str
