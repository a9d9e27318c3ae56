"""A job whose `lookalike serve` is SIGKILLed mid-way is finished by the next one, once the
dead server's lease on it lapses: every image once, none twice."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from lookalike.services.bench.search import free_port, start_server
from lookalike.services.catalog.models import Embedding, Image
from lookalike.services.setup import init_catalog, open_runtime
from tests.services.conftest import make_settings

pytestmark = [pytest.mark.slow, pytest.mark.integration]

DEADLINE_S = 120
PHOTOS = 23


def poll(client: httpx.Client, job_id: int, done: object, what: str) -> dict:
    """GET the job until `done(shown)`; fails after DEADLINE_S."""
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        shown = client.get(f"/v1/jobs/{job_id}").json()
        if done(shown):
            return shown
        time.sleep(0.05)
    pytest.fail(f"job {job_id} did not {what} within {DEADLINE_S} s: {shown}")


def test_a_job_of_a_sigkilled_server_is_finished_by_the_next(tmp_path: Path,
                                                             photo_dir: Path) -> None:
    settings = make_settings(tmp_path / "home")
    init_catalog(settings)
    env = {"LOOKALIKE_INGEST_ROOTS": str(photo_dir), "LOOKALIKE_JOB_BATCH_SIZE": "3",
           "LOOKALIKE_JOB_LEASE_S": "3", "LOOKALIKE_DECODE_WORKERS": "0",
           "LOOKALIKE_TORCH_THREADS": "1"}
    port = free_port()
    first = start_server(settings, port, extra_env=env)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            answer = client.post("/v1/jobs", json={"kind": "ingest", "paths": [str(photo_dir)]})
            assert answer.status_code == 202, answer.text
            job_id = answer.json()["id"]
            poll(client, job_id, lambda shown: shown["progress"]["done"] >= 3,
                 "record a batch")
            first.kill()  # SIGKILL: no shutdown, the lease is not released
            first.wait(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()

    with open_runtime(settings) as runtime, runtime.session() as session:
        done = session.scalar(select(func.count()).select_from(Image))
    assert 0 < done < PHOTOS, f"the kill did not land mid-job ({done} of {PHOTOS} images)"

    second = start_server(settings, port, extra_env=env)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            shown = poll(client, job_id, lambda s: s["state"] not in ("queued", "running"),
                         "end after the restart")
    finally:
        second.terminate()
        second.wait(timeout=30)
    assert shown["state"] == "succeeded", shown
    assert shown["progress"]["done"] == PHOTOS and shown["counts"]["failed"] == 0, shown
    assert shown["counts"]["added"] + shown["counts"]["duplicates"] == PHOTOS, shown
    with open_runtime(settings) as runtime, runtime.session() as session:
        images = session.scalar(select(func.count()).select_from(Image)
                                .where(Image.status == "embedded"))
        vectors = session.scalar(select(func.count()).select_from(Embedding))
        rows = session.scalar(select(func.count()).select_from(Image))
    assert images == vectors == rows == PHOTOS, (images, vectors, rows)
