"""Inputs and outputs of catalog queries: what callers create and what replicas read."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from lookalike.services.catalog.documents import SpaceOptions

SHA256_PATTERN = r"^[0-9a-f]{64}$"


class ImageCreate(BaseModel):
    """A new image row; `sha256` is the hex digest of its bytes (lower case)."""

    model_config = ConfigDict(frozen=True)

    sha256: str = Field(pattern=SHA256_PATTERN)
    source_uri: str
    stored_path: str | None = None
    width: int | None = Field(None, ge=1)
    height: int | None = Field(None, ge=1)
    format: str | None = Field(None, max_length=16)
    byte_size: int | None = Field(None, ge=0)
    status: Literal["pending", "failed"] = "pending"
    error: str | None = None
    collection: str | None = Field(None, max_length=200)
    label: str | None = Field(None, max_length=200)
    meta: dict[str, Any] = Field(default_factory=dict)
    video_id: int | None = Field(None, ge=1)
    t: float | None = Field(None, ge=0)
    title: str | None = Field(None, max_length=300)
    caption: str | None = None
    topic: str | None = Field(None, max_length=100)
    topic_score: float | None = None


class VideoCreate(BaseModel):
    """A new video row; `sha256` is the hex digest of the clip's bytes (lower case)."""

    model_config = ConfigDict(frozen=True)

    sha256: str = Field(pattern=SHA256_PATTERN)
    source_uri: str
    stored_path: str | None = None
    byte_size: int = Field(ge=1)
    container: str = Field(max_length=16)
    codec: str = Field(max_length=32)
    width: int = Field(ge=1)
    height: int = Field(ge=1)
    fps: float = Field(ge=0)
    duration: float = Field(ge=0)
    collection: str | None = Field(None, max_length=200)
    label: str | None = Field(None, max_length=200)
    label_score: float | None = None


class RegionCreate(BaseModel):
    """A new region: a box x0, y0, x1, y1 in the original image's pixels, from `detector` (a
    detector's name, or 'user')."""

    model_config = ConfigDict(frozen=True)

    x0: float = Field(ge=0)
    y0: float = Field(ge=0)
    x1: float
    y1: float
    label: str | None = Field(None, max_length=200)
    score: float | None = None
    detector: str = Field(min_length=1, max_length=100)


class SpaceCreate(BaseModel):
    """A new embedding space; the first space in a catalog becomes the default."""

    model_config = ConfigDict(frozen=True)

    name: str = Field(min_length=1, max_length=100)
    backbone: str = Field(min_length=1, max_length=100)
    weights_sha256: str | None = Field(None, pattern=SHA256_PATTERN)
    layer: str = Field(min_length=1, max_length=100)
    pooling: str = Field(min_length=1, max_length=32)
    whitening: str | None = Field(None, max_length=100)
    dim: int = Field(ge=1)
    options: SpaceOptions = Field(default_factory=lambda: SpaceOptions())
    make_default: bool = False


@dataclass(frozen=True, slots=True)


class Change:
    """One entry of a space's change log, as an index replica applies it.

    `vector` is the image's current vector for an add (float32 little-endian bytes), or None
    when the embedding has since been removed (a later remove follows in the log).
    """

    seq: int
    image_id: int
    op: Literal["add", "remove"]
    vector: bytes | None
    region_id: int | None = None

    @property
    def key(self) -> int:
        """The id the index holds the vector under: the region's in a region space."""
        return self.region_id if self.region_id is not None else self.image_id
