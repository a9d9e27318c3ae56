"""Pydantic shapes of the HTTP API (the same JSON the CLI prints with --json)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from lookalike.services.catalog.documents import SpaceOptions
from lookalike.services.requestbody import RequestBody


class SearchQuery(BaseModel):
    """POST /v1/search's query parameters, validated as one model: FastAPI inspects each
    separately declared parameter's annotation again on every request."""

    k: int = Field(10, ge=1, le=1000)
    space: str | None = None
    qe: bool | None = Field(None, description="α-query expansion; default: the space's "
                            "setting")
    dba: bool | None = Field(None, description="database-side augmentation (re-ranks a "
                             "shortlist); default: the space's setting")
    topic: str | None = Field(None, max_length=100)
    collection: str | None = Field(None, max_length=200)
    label: str | None = Field(None, max_length=200)
    video_label: str | None = Field(None, max_length=200, description="only frames of "
                                    "videos with this label (given at ingest or by the "
                                    "default video classifier)")
    facets: bool | None = Field(None, description="topic and label counts over the "
                                "candidates; default: when the search is filtered")
    verify: bool | None = Field(None, description="re-rank the top candidates by "
                                "local-feature inliers; default: the space's setting")
    group_videos: bool = Field(True, description="fold the frames of one video into one "
                               "result, best frame first")
    refine_moment: bool | None = Field(None, description="re-rank the best clip's frames by "
                                       "registering the still onto them, so its `t` is the "
                                       "right second; default: LOOKALIKE_MOMENT_REFINE (on)")
    box: str | None = Field(None, max_length=200, description="x0,y0,x1,y1 in the query "
                            "image's pixels: search with that region of it")
    scope: Literal["images", "regions"] = Field("images", description="images: whole images; "
                                                "regions: the stored regions (boxes from "
                                                "detectors or people), each result an image "
                                                "with its matching regions, best first")


class SearchJsonRequest(RequestBody):
    """A JSON search names its query image (a catalogued id or an http(s) URL, not both),
    or words (`text`), or both: with an image, the words restrict the similarity search to
    the images whose title or caption holds every word."""

    image_id: int | None = Field(None, ge=1, le=2**63 - 1)
    url: str | None = Field(None, max_length=2048,
                            description="an http(s) image URL, fetched under the URL fetch "
                            "rules (public addresses, LOOKALIKE_FETCH_ALLOW)")
    text: str | None = Field(None, description="words every result's title or caption "
                             "holds; alone: a ranked full-text search")

    @model_validator(mode="after")
    def _one_query(self) -> SearchJsonRequest:
        if self.image_id is not None and self.url is not None:
            raise ValueError("give at most one of 'image_id' and 'url'")
        if self.image_id is None and self.url is None and self.text is None:
            raise ValueError("give 'image_id', 'url' or 'text' (or text with one of them)")
        return self


class VideoFramePublic(BaseModel):
    image_id: int
    t: float
    score: float


class VideoHitPublic(BaseModel):
    """The clip a frame hit comes from: `t` is the moment in seconds (the hit frame's time,
    or, where the moment was refined, that of the frame decoded around it that the query
    matches best); `frames` the clip's indexed frames among the hits, best first (one when
    grouping is off)."""

    id: int
    t: float
    duration: float
    label: str | None = None
    file_url: str
    frames: list[VideoFramePublic]


class RegionHitPublic(BaseModel):
    """A matching region (scope=regions): its box in the image's pixels, label, detector
    score (null for a person's box) and similarity to the query."""

    id: int
    box: list[float]
    label: str | None
    score: float | None
    detector: str
    similarity: float
    image_size: list[int] | None = Field(None, description="the image's width and height, "
                                         "to draw the box over it")


class SearchHitPublic(BaseModel):
    image_id: int
    score: float
    source: str
    label: str | None
    collection: str | None
    title: str | None = None
    caption: str | None = None
    topic: str | None = None
    topic_score: float | None = None
    inliers: int | None = Field(None, description="local-feature inliers (verify=1)")
    is_copy: bool | None = Field(None, description="the space's calibrated copy decision "
                                 "(null: the space has no copy calibration)")
    thumbnail_url: str
    video: VideoHitPublic | None = None
    region: RegionHitPublic | None = Field(None, description="scope=regions: the best "
                                           "matching region of the image")
    regions: list[RegionHitPublic] | None = Field(None, description="scope=regions: every "
                                                  "matching region of the image, best first")


class FacetCount(BaseModel):
    value: str
    count: int


class SearchFacets(BaseModel):
    """Counts over every candidate (not only the k shown); each facet ignores its own
    filter, so that its chips show what choosing another value gives."""

    topics: list[FacetCount]
    labels: list[FacetCount]


class SearchResponse(BaseModel):
    space: str
    took_ms: float
    qe: bool
    dba: bool
    mode: str = Field("image", description="image, image+filters (similarity restricted "
                      "to the filtered images) or text (ranked full-text search)")
    facets: SearchFacets | None = None
    verified: bool = False
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
    title: str | None = None
    caption: str | None = None
    topic: str | None = None
    topic_score: float | None = None
    created_at: datetime | None


class VideoFrameListed(BaseModel):
    image_id: int
    t: float
    thumbnail_url: str


class VideoPublic(BaseModel):
    """A clip: its facts, its class (when a video classifier gave one) and its frames."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    sha256: str
    source_uri: str | None
    byte_size: int
    container: str
    codec: str
    width: int
    height: int
    fps: float
    duration: float
    collection: str | None
    label: str | None
    label_score: float | None
    created_at: datetime | None
    file_url: str = ""
    frames: list[VideoFrameListed] = Field(default_factory=list)


class VideoUploadResponse(VideoPublic):
    duplicate: bool


class ImageWordsUpdate(RequestBody):
    """New words for an image: the fields given are set (null clears one), others kept."""

    title: str | None = Field(None, max_length=300)
    caption: str | None = Field(None, max_length=20_000)


class UploadRegion(BaseModel):
    """A person's box stored with an upload (form field `box`): a `user` region."""

    id: int
    box: list[float]
    label: str | None
    score: float | None
    detector: str


class ImageUploadResponse(ImagePublic):
    duplicate: bool
    thumbnail_url: str
    file_url: str
    region: UploadRegion | None = Field(None, description="the stored `user` region, when "
                                        "the upload gave a box")
    detected: int | None = Field(None, description="regions the `detect` detector stored")


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


class CopiesQuery(BaseModel):
    """POST /v1/copies's query parameters as one model, so that the multipart reader can tell
    a client that sends one of them as a form field where it goes."""

    k: int = Field(10, ge=1, le=100, description="most copies listed")
    space: str | None = None


class CopiesJsonRequest(RequestBody):
    """A JSON copy question names a catalogued image."""

    image_id: int = Field(ge=1, le=2**63 - 1)


class CopyPublic(BaseModel):
    image_id: int
    score: float
    inliers: int | None
    source: str
    thumbnail_url: str


class CopiesResponse(BaseModel):
    space: str
    took_ms: float
    is_copy: bool
    answer: str = Field(description="'copy of image 42 (and 7)' or 'no copy'")
    thresholds: dict[str, float]
    copies: list[CopyPublic]


class ErrorResponse(BaseModel):
    error: str
    detail: str
