"""A job as the API, the CLI and the web page show it: one typed shape, so the OpenAPI
document describes the job routes and every caller reads the same fields."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class JobProgress(BaseModel):
    done: int = Field(description="items (images, epochs) finished")
    total: int
    rate_per_s: float | None = Field(description="items per second since the job started")


class JobCounts(BaseModel):
    added: int = 0
    duplicates: int = 0
    failed: int = 0
    regions: int = Field(0, description="regions stored by an ingest job's detector")


class JobBatches(BaseModel):
    total: int = Field(description="batches (one task each; an epoch for fine-tuning)")
    finished: int


class PatchResponse(BaseModel):
    image_id: int
    response: float = Field(description="the channel's strongest response in the image")


class TopPatchesPublic(BaseModel):
    png: str | None = Field(description="the 3x3 PNG of the patches, relative to "
                                        "LOOKALIKE_HOME (GET /v1/jobs/{id}/top-patches.png)")
    top: list[PatchResponse] = Field(description="best first")


class DuplicatesPublic(BaseModel):
    space: str
    threshold: float = Field(description="cosine similarity linking two images")
    threshold_from: str = Field(description="given, or the space's calibration")
    images: int = Field(description="live images clustered")
    clusters: int
    extras: int = Field(description="images that keeping one per cluster would delete")
    report: str = Field(description="the clusters (JSON), relative to LOOKALIKE_HOME "
                        "(GET /v1/jobs/{id}/duplicates)")


class JobPublic(BaseModel):
    """State, progress, counts and errors of one job; `training` for fine-tuning,
    text-train and video-train jobs, `top_patches` for top-patches jobs."""

    id: int
    kind: str = Field(description="ingest, reindex, finetune, text-train, text-apply, "
                      "video-train, top-patches, detect, detect-train or duplicates")
    state: str = Field(description="queued, running, succeeded, failed or cancelled")
    attempts: int
    training: dict[str, Any] | None = Field(
        None, description="history (loss, validation mAP per epoch), classes, the new space")
    top_patches: TopPatchesPublic | None = Field(
        None, description="the patches' PNG and (image id, response), once the job is done")
    clusters: DuplicatesPublic | None = Field(
        None, description="a duplicates job's summary, once it is done")
    progress: JobProgress
    counts: JobCounts
    batches: JobBatches
    error: str | None
    errors: list[str] = Field(description="one line per failed item or batch")
    created_at: str | None
    started_at: str | None
    finished_at: str | None
