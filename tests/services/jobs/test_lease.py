"""Job leases: two runtimes on one catalog act as two processes; a job that one of them runs
is never run by the other at the same time, and is taken over once its runner is gone."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lookalike.services.catalog import jobs as job_queries
from lookalike.services.catalog.documents import IngestParams
from lookalike.services.catalog.models import Job
from lookalike.services.jobs import runner as jobs
from lookalike.services.runtime import Runtime
from lookalike.services.setup import init_catalog, open_runtime
from tests.services.conftest import make_settings

pytestmark = pytest.mark.slow

LEASE_S = 2.0
Calls = list[tuple[str, int, float]]


@pytest.fixture()
def two(tmp_path: Path, database_url: str) -> Iterator[tuple[Runtime, Runtime]]:
    """Runtimes A and B on one catalog, as two server processes would hold them."""
    settings = make_settings(tmp_path / "home", database_url, job_lease_s=LEASE_S)
    init_catalog(settings)
    a, b = open_runtime(settings), open_runtime(settings)
    yield a, b
    a.close()
    b.close()


def new_job(runtime: Runtime, batches: int) -> Job:
    """A queued ingest job of `batches` one-item batches (the items are never read)."""
    params = IngestParams(source="paths", batch_size=1,
                          items=[(f"/nowhere/{n}.jpg", None) for n in range(batches)])
    with runtime.session() as session:
        job = job_queries.create_job(session=session, kind="ingest", params=params,
                                     total=batches, batches=batches)
        session.commit()
    return job


def recording_runner(names: dict[int, str], calls: Calls, gate: threading.Event
                     ) -> Callable[[Runtime, Job, int], None]:
    """A batch runner that notes which runtime ran which batch and when; batch 0 lasts until
    `gate` opens. It records the batch's outcome as a real batch does."""
    def run(runtime: Runtime, job: Job, batch: int) -> None:
        calls.append((names[id(runtime)], batch, time.monotonic()))
        if batch == 0:
            gate.wait(30)
        with runtime.session() as session:
            job_queries.record_batch(session=session, job_id=job.id, batch=batch, counts={},
                                     errors=[], size=1)
            session.commit()
    return run


def wait_until(condition: Callable[[], bool], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def ended(runtime: Runtime, job_id: int) -> bool:
    return jobs.get_job(runtime, job_id).state not in ("queued", "running")


def test_a_job_that_a_live_process_runs_is_left_to_it(
        two: tuple[Runtime, Runtime], monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = two
    calls: Calls = []
    gate = threading.Event()
    monkeypatch.setitem(jobs.BATCH_RUNNERS, "ingest",
                        recording_runner({id(a): "A", id(b): "B"}, calls, gate))
    job = new_job(a, batches=2)
    a.launcher.send(a, job.id, [0, 1])
    wait_until(lambda: len(calls) == 1)

    assert jobs.resume_interrupted(b) == [job.id]  # B's runner waits for A's lease
    time.sleep(2.5 * LEASE_S)  # A's batch outlasts its lease: A renews it meanwhile
    assert [(who, batch) for who, batch, _ in calls] == [("A", 0)]
    gate.set()
    # the last batch ends the job, and the runner gives its lease up just after
    wait_until(lambda: ended(a, job.id) and jobs.get_job(a, job.id).lease_owner is None)

    done = jobs.get_job(a, job.id)
    assert done.state == "succeeded"
    assert [(who, batch) for who, batch, _ in calls] == [("A", 0), ("A", 1)]
    assert done.lease_owner is None and done.lease_expires_at is None  # released


def test_a_lapsed_lease_is_taken_over(two: tuple[Runtime, Runtime],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = two
    calls: Calls = []
    gate = threading.Event()
    gate.set()
    monkeypatch.setitem(jobs.BATCH_RUNNERS, "ingest",
                        recording_runner({id(a): "A", id(b): "B"}, calls, gate))
    job = new_job(a, batches=2)
    claimed = time.monotonic()
    with a.session() as session:  # A's runner started batch 0 and died, its lease still on
        assert job_queries.start_batch(session=session, job_id=job.id, batch=0)
        assert job_queries.claim_lease(session=session, job_id=job.id, owner="a-host:1:dead",
                                       lease_s=LEASE_S)
        session.commit()

    assert jobs.resume_interrupted(b) == [job.id]
    wait_until(lambda: ended(b, job.id))

    assert jobs.get_job(b, job.id).state == "succeeded"
    assert [(who, batch) for who, batch, _ in calls] == [("B", 0), ("B", 1)]
    assert calls[0][2] - claimed >= LEASE_S * 0.95  # not before A's lease lapsed


def claim_at_once(two: tuple[Runtime, Runtime], job_id: int) -> dict[str, bool]:
    """A and B claim the job's lease in two threads released together: who got it."""
    barrier = threading.Barrier(2)
    won: dict[str, bool] = {}

    def claim(runtime: Runtime, owner: str) -> None:
        with runtime.session() as session:
            barrier.wait()
            won[owner] = job_queries.claim_lease(session=session, job_id=job_id, owner=owner,
                                                 lease_s=60)
            session.commit()

    threads = [threading.Thread(target=claim, args=(runtime, owner))
               for runtime, owner in zip(two, ("A", "B"), strict=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return won


@pytest.mark.parametrize("held_before", ["no one", "a dead runner"])
def test_of_two_runners_claiming_at_once_exactly_one_wins(
        two: tuple[Runtime, Runtime], held_before: str) -> None:
    for _ in range(10):
        job = new_job(two[0], batches=1)
        if held_before == "a dead runner":
            with two[0].session() as session:
                job_queries.claim_lease(session=session, job_id=job.id, owner="dead:1:x",
                                        lease_s=0.0)
                session.commit()
        won = claim_at_once(two, job.id)
        assert sorted(won.values()) == [False, True], won
        holder = jobs.get_job(two[0], job.id).lease_owner
        assert holder is not None and won[holder]


def test_a_job_that_has_ended_takes_no_new_lease_holder(two: tuple[Runtime, Runtime]) -> None:
    a, _ = two
    job = new_job(a, batches=1)
    with a.session() as session:  # the holder ends the job, then gives its lease up
        assert job_queries.claim_lease(session=session, job_id=job.id, owner="A", lease_s=60)
        job_queries.cancel_job(session=session, job_id=job.id)
        assert job_queries.claim_lease(session=session, job_id=job.id, owner="A", lease_s=60)
        job_queries.release_lease(session=session, job_id=job.id, owner="A")
        session.commit()
    # a runner that read the job as running just before claims it just after
    with a.session() as session:
        assert not job_queries.claim_lease(session=session, job_id=job.id, owner="B",
                                           lease_s=60)
        session.commit()
    assert jobs.get_job(a, job.id).lease_owner is None
