"""Job rows: create, look up, list, and move through queued -> running -> a final state.

A job is split into numbered batches; each batch's outcome is recorded once under the job's
row lock, so concurrent workers (and redelivered tasks) never double-count. An in-process
runner holds the job's lease while it runs batches, so that no other process runs them too.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, and_, or_, select, update
from sqlalchemy.orm import Session

from lookalike.services.catalog.documents import BatchOutcome, IngestParams, JobParams, JobResult
from lookalike.services.catalog.models import Job, utcnow
from lookalike.services.errors import JobNotFound, JobStateConflict

FINAL_STATES = ("succeeded", "failed", "cancelled")
COUNTS = ("added", "duplicates", "failed")
MAX_ERRORS = 100


def create_job(*, session: Session, kind: str, params: JobParams, total: int,
               batches: int) -> Job:
    """A queued job with `batches` batches covering `total` items."""
    job = Job(kind=kind, params=params, state="queued", progress_total=total,
              result=JobResult(batch_count=batches))
    if batches == 0:
        job.state = "succeeded"
        job.started_at = job.finished_at = utcnow()
    session.add(job)
    session.flush()
    return job


def get_job(*, session: Session, job_id: int, lock: bool = False) -> Job | None:
    """The job with this id, or None; `lock` takes its row lock until the transaction ends."""
    statement = select(Job).where(Job.id == job_id)
    if lock:
        statement = statement.with_for_update()
    return session.scalars(statement.execution_options(populate_existing=True)).first()


def list_jobs(*, session: Session, state: str | None = None, limit: int = 50) -> list[Job]:
    """The newest jobs first, optionally only those in `state`."""
    statement = select(Job).order_by(Job.id.desc()).limit(limit)
    if state is not None:
        statement = statement.where(Job.state == state)
    return list(session.scalars(statement))


def _locked(session: Session, job_id: int) -> Job:
    job = get_job(session=session, job_id=job_id, lock=True)
    if job is None:
        raise JobNotFound(f"no job with id {job_id}; `lookalike jobs list` shows the jobs")
    return job


def start_batch(*, session: Session, job_id: int, batch: int) -> bool:
    """Mark the job running for this batch; False when the batch must not run (the job was
    cancelled or ended, or the batch already has an outcome)."""
    job = _locked(session, job_id)
    if job.state in FINAL_STATES or str(batch) in job.result.batches:
        return False
    if job.state == "queued":
        job.state = "running"
        job.started_at = job.started_at or utcnow()
    job.attempts += 1
    return True


def record_batch(*, session: Session, job_id: int, batch: int, counts: dict[str, int],
                 errors: Sequence[str], size: int, error: str | None = None) -> Job:
    """Record a batch's outcome once (later records of the same batch are ignored) and end
    the job when every batch has one."""
    job = _locked(session, job_id)
    result = job.result
    if str(batch) in result.batches:
        return job
    outcome = BatchOutcome(state="failed" if error else "succeeded", error=error, **counts)
    batches = {**result.batches, str(batch): outcome}
    job.result = result.model_copy(update={
        "batches": batches,
        "added": result.added + outcome.added,
        "duplicates": result.duplicates + outcome.duplicates,
        "failed": result.failed + outcome.failed,
        "regions": result.regions + outcome.regions,
        "errors": [*result.errors, *errors][:MAX_ERRORS]})
    job.progress_done += size
    if len(batches) >= result.batch_count and job.state not in FINAL_STATES:
        _finish(job, batches)
    return job


def _finish(job: Job, batches: dict[str, BatchOutcome]) -> None:
    failed = sorted((int(key), value.error) for key, value in batches.items()
                    if value.state == "failed")
    job.state = "failed" if failed else "succeeded"
    job.error = "; ".join(f"batch {key}: {error}" for key, error in failed) or None
    job.finished_at = utcnow()


def cancel_job(*, session: Session, job_id: int) -> Job:
    """Stop a queued or running job: batches not started yet are skipped."""
    job = _locked(session, job_id)
    if job.state in FINAL_STATES:
        raise JobStateConflict(f"job {job_id} is already {job.state}; only queued or running "
                            "jobs can be cancelled")
    job.state = "cancelled"
    job.finished_at = utcnow()
    return job


def reset_for_retry(*, session: Session, job_id: int) -> tuple[Job, list[int]]:
    """Queue a failed or cancelled job again; returns it and the batches still to run
    (failed ones and those never run). Finished batches keep their outcome."""
    job = _locked(session, job_id)
    if job.state not in ("failed", "cancelled"):
        raise JobStateConflict(f"job {job_id} is {job.state}; only failed or cancelled jobs "
                            "can be retried")
    kept = {key: value for key, value in job.result.batches.items()
            if value.state == "succeeded"}
    job.result = job.result.model_copy(update={"batches": kept})
    job.state = "queued"
    job.error = None
    job.finished_at = None
    job.progress_done = sum(batch_size(job, int(key)) for key in kept)
    return job, [b for b in range(job.result.batch_count) if str(b) not in kept]


def batch_size(job: Job, batch: int) -> int:
    """How many progress units a batch counts for: its listed size, else its share of the
    job's items."""
    params = job.params
    if isinstance(params, IngestParams):
        return len(params.items[batch * params.batch_size:(batch + 1) * params.batch_size])
    return params.batch_sizes[batch]


def update_result(*, session: Session, job_id: int, values: dict[str, Any]) -> Job:
    """Merge `values` into the job's result (a running job's figures: history, curves)."""
    job = _locked(session, job_id)
    job.result = JobResult.model_validate({**job.result.model_dump(), **values})
    return job


def claim_lease(*, session: Session, job_id: int, owner: str, lease_s: float) -> bool:
    """Take the job's lease for `owner`, or renew it, until `lease_s` seconds from now,
    unless another owner holds one that has not lapsed or the job has ended; True when
    `owner` holds it. The job's state is part of the one UPDATE: read first and claimed
    after, a job that ended and was released in between got a new lease holder.

    One conditional UPDATE, so of owners claiming at once exactly one wins: PostgreSQL
    re-checks the condition on the row version it waited for, and SQLite runs one writer at
    a time. The times are the claiming processes' clocks, which must agree to well within
    `lease_s`."""
    now = utcnow()
    free = or_(Job.lease_owner.is_(None), Job.lease_expires_at < now)
    claimable = or_(Job.lease_owner == owner, and_(free, Job.state.not_in(FINAL_STATES)))
    statement = (update(Job).where(Job.id == job_id, claimable)
                 .values(lease_owner=owner, lease_heartbeat_at=now,
                         lease_expires_at=now + timedelta(seconds=lease_s))
                 .execution_options(synchronize_session=False))
    return cast(CursorResult[Any], session.execute(statement)).rowcount == 1


def release_lease(*, session: Session, job_id: int, owner: str) -> None:
    """Give up `owner`'s lease on the job; a lease another owner has taken since stays."""
    statement = (update(Job).where(Job.id == job_id, Job.lease_owner == owner)
                 .values(lease_owner=None, lease_heartbeat_at=None, lease_expires_at=None)
                 .execution_options(synchronize_session=False))
    session.execute(statement)
