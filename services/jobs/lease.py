"""Job leases: one in-process runner at a time per job, across every process on a catalog.

A runner claims the job's lease in the catalog before it runs the job's batches, renews it
from a heartbeat thread every third of LOOKALIKE_JOB_LEASE_S, and releases it when done. A
runner that finds the lease held waits until its holder releases it or stops renewing it
(the holder died), then takes it. So a server that starts while another process still runs
a job leaves that job alone, and finishes it only once the other process is gone: a
fine-tuning epoch never runs twice side by side into one checkpoint. The claim is one
conditional UPDATE (`catalog.jobs.claim_lease`): of runners claiming at once, one wins.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading

from sqlalchemy.exc import SQLAlchemyError

from lookalike.services.catalog import jobs as job_queries
from lookalike.services.catalog.models import Job, utcnow
from lookalike.services.errors import JobNotFound
from lookalike.services.runtime import Runtime

log = logging.getLogger(__name__)


def new_owner() -> str:
    """A lease owner: this host and process, and a random part naming one runner in it."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


class JobLease:
    """One runner's lease on one job: `acquire` (waiting while another runner holds it),
    renewed in the background until `release`; `lost` once another runner took it over."""

    def __init__(self, runtime: Runtime, job_id: int) -> None:
        self.runtime = runtime
        self.job_id = job_id
        self.owner = new_owner()
        self.lease_s = runtime.settings.job_lease_s
        self._stop = threading.Event()
        self._lost = threading.Event()
        self._heartbeat: threading.Thread | None = None

    @property
    def lost(self) -> bool:
        return self._lost.is_set()

    def acquire(self) -> bool:
        """Hold the lease: at once when it is free, else once its holder releases it or lets
        it lapse. False when the job ended meanwhile or the runtime is closing."""
        waiting = False
        while True:
            job = self._try_claim()
            if job is None:
                self._start_heartbeat()
                return True
            if job.state in job_queries.FINAL_STATES:
                return False
            if not waiting:
                log.info("job %d is leased to %s until %s; waiting for it", self.job_id,
                         job.lease_owner, job.lease_expires_at)
                waiting = True
            if self.runtime.closing.wait(self._pause(job)):
                return False

    def _try_claim(self) -> Job | None:
        """None when this runner now holds the lease; else the job row as it stands."""
        with self.runtime.session() as session:
            job = job_queries.get_job(session=session, job_id=self.job_id)
            if job is None:
                raise JobNotFound(f"no job with id {self.job_id}; GET /v1/jobs lists the jobs")
            if job.state not in job_queries.FINAL_STATES and job_queries.claim_lease(
                    session=session, job_id=self.job_id, owner=self.owner,
                    lease_s=self.lease_s):
                session.commit()
                return None
            session.commit()
            return job

    def _pause(self, job: Job) -> float:
        """How long to wait before trying again: until the holder's lease would lapse, and
        at most one renewal interval."""
        interval = self.lease_s / 3
        if job.lease_expires_at is None:
            return interval
        left = (job.lease_expires_at - utcnow()).total_seconds()
        return min(interval, max(left, 0.0) + 0.01)

    def _start_heartbeat(self) -> None:
        self._heartbeat = threading.Thread(target=self._renew, name=f"lease-{self.job_id}",
                                           daemon=True)
        self._heartbeat.start()

    def _renew(self) -> None:
        """Renew the lease every third of its length until released; a failed renewal (the
        catalog unreachable) is tried again, and a lease found taken is marked lost."""
        while not self._stop.wait(self.lease_s / 3):
            try:
                with self.runtime.session() as session:
                    held = job_queries.claim_lease(session=session, job_id=self.job_id,
                                                   owner=self.owner, lease_s=self.lease_s)
                    session.commit()
            except SQLAlchemyError as exc:
                log.warning("job %d: could not renew its lease: %s", self.job_id, exc)
                continue
            if not held:
                log.warning("job %d: lease lapsed and taken over by another runner",
                            self.job_id)
                self._lost.set()
                return

    def release(self) -> None:
        """Stop renewing and give the lease up, so a waiting runner need not wait for it to
        lapse; if the catalog is unreachable, it lapses by itself."""
        self._stop.set()
        if self._heartbeat is not None:
            self._heartbeat.join()
        try:
            with self.runtime.session() as session:
                job_queries.release_lease(session=session, job_id=self.job_id,
                                          owner=self.owner)
                session.commit()
        except SQLAlchemyError as exc:
            log.warning("job %d: could not release its lease (it lapses by itself): %s",
                        self.job_id, exc)
