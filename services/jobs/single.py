"""Jobs of one batch: a whole-catalog pass (duplicate clusters, top patches) queued as one
unit of work, so it runs where jobs run rather than inside a request."""

from __future__ import annotations

from typing import Any

from lookalike.services.catalog import jobs as job_queries
from lookalike.services.catalog.documents import JobParams
from lookalike.services.catalog.models import Job
from lookalike.services.runtime import Runtime


def create_single_batch_job(runtime: Runtime, *, kind: str, params: JobParams) -> Job:
    """A queued job of `kind` whose one batch does all the work."""
    with runtime.session() as session:
        job = job_queries.create_job(session=session, kind=kind, params=params, total=1,
                                     batches=1)
        session.commit()
    return job


def finish_single_batch(runtime: Runtime, job: Job, batch: int, result: dict[str, Any]) -> None:
    """Record the job's result and its one batch as done, in one transaction."""
    with runtime.session() as session:
        job_queries.update_result(session=session, job_id=job.id, values=result)
        job_queries.record_batch(session=session, job_id=job.id, batch=batch, counts={},
                                 errors=[], size=1)
        session.commit()
