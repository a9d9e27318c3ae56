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


class JobBatches(BaseModel):
    total: int = Field(description="batches (one task each; an epoch for fine-tuning)")
    finished: int


class JobPublic(BaseModel):
    """State, progress, counts and errors of one job; `training` for fine-tuning and
    text-train jobs."""

    id: int
    kind: str = Field(description="ingest, reindex, finetune, text-train or text-apply")
    state: str = Field(description="queued, running, succeeded, failed or cancelled")
    attempts: int
    training: dict[str, Any] | None = Field(
        None, description="history (loss, validation mAP per epoch), classes, the new space")
    progress: JobProgress
    counts: JobCounts
    batches: JobBatches
    error: str | None
    errors: list[str] = Field(description="one line per failed item or batch")
    created_at: str | None
    started_at: str | None
    finished_at: str | None
