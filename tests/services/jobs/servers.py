"""A job on a `lookalike serve` that is SIGKILLed mid-way, then finished by a fresh server:
the two halves of every kill-and-resume test of jobs over HTTP."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import pytest

from lookalike.services.bench.search import free_port, start_server
from lookalike.services.config import Settings

DEADLINE_S = 120


def poll(client: httpx.Client, job_id: int, done: Callable[[dict], bool], what: str) -> dict:
    """GET the job until `done(shown)`; fails after DEADLINE_S."""
    deadline = time.monotonic() + DEADLINE_S
    shown: dict = {}
    while time.monotonic() < deadline:
        shown = client.get(f"/v1/jobs/{job_id}").json()
        if done(shown):
            return shown
        time.sleep(0.05)
    pytest.fail(f"job {job_id} did not {what} within {DEADLINE_S} s: {shown}")


def submit_then_kill(settings: Settings, env: dict[str, str], body: dict,
                     landed: Callable[[dict], bool], what: str) -> int:
    """POST job `body` to a fresh server, SIGKILL the server once `landed(job)` (no shutdown:
    its lease on the job is not released); returns the job's id."""
    port = free_port()
    process = start_server(settings, port, extra_env=env)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            answer = client.post("/v1/jobs", json=body)
            assert answer.status_code == 202, answer.text
            job_id = int(answer.json()["id"])
            poll(client, job_id, landed, what)
            process.kill()
            process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return job_id


def finish_on_a_new_server(settings: Settings, env: dict[str, str], job_id: int) -> dict:
    """Start another server on the catalog and wait until it has ended the job (once the dead
    server's lease lapsed); returns the job as shown then."""
    port = free_port()
    process = start_server(settings, port, extra_env=env)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            return poll(client, job_id, lambda s: s["state"] not in ("queued", "running"),
                        "end after the restart")
    finally:
        process.terminate()
        process.wait(timeout=30)
