"""/v1/jobs: submit an ingest job (202), follow it, list jobs."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from lookalike.services import jobs
from lookalike.services.api.deps import RuntimeDep
from lookalike.services.api.schemas import ErrorResponse

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])
ERRORS = {status: {"model": ErrorResponse} for status in (404, 409, 422)}


class JobCreate(BaseModel):
    """An ingest job over server-side paths (files, folders, lists) or URLs."""

    kind: Literal["ingest"] = "ingest"
    paths: list[str] | None = Field(None, description="files, folders, .txt/.lst path lists")
    urls: list[str] | None = Field(None, description="http(s) URLs of images")
    collection: str | None = None
    label_from_dir: bool = False


@router.post("", status_code=202, responses=ERRORS)
async def create_job(body: JobCreate, runtime: RuntimeDep) -> dict[str, Any]:
    """Queue a job; it runs on the workers (or in this process without a broker)."""
    job = await run_in_threadpool(jobs.submit_ingest, runtime, paths=body.paths, urls=body.urls,
                                  collection=body.collection,
                                  label_from_dir=body.label_from_dir)
    return jobs.describe(job)


@router.get("", responses=ERRORS)
def list_jobs(runtime: RuntimeDep, state: str | None = None, limit: int = 50) -> list[dict]:
    return [jobs.describe(job) for job in jobs.list_jobs(runtime, state=state, limit=limit)]


@router.get("/{job_id}", responses=ERRORS)
def get_job(job_id: int, runtime: RuntimeDep) -> dict[str, Any]:
    return jobs.describe(jobs.get_job(runtime, job_id))


@router.post("/{job_id}/cancel", responses=ERRORS)
def cancel_job(job_id: int, runtime: RuntimeDep) -> dict[str, Any]:
    return jobs.describe(jobs.cancel(runtime, job_id))


@router.post("/{job_id}/retry", status_code=202, responses=ERRORS)
def retry_job(job_id: int, runtime: RuntimeDep) -> dict[str, Any]:
    return jobs.describe(jobs.retry(runtime, job_id))
