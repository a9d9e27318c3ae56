"""The job broker (Redis) stops in the middle of an ingest job and starts again: the job
finishes, every image lands once with one embedding, and meanwhile the API keeps answering
searches, says on /healthz that the broker is unreachable, and refuses new jobs with a 503
naming the broker, instead of hanging.

The Redis here is a private `redis-server` on a free port (the shared one is never stopped),
with an append-only file like docker-compose's, stopped the way `docker stop` does (SIGTERM).
"""

from __future__ import annotations

import hashlib
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from sqlalchemy import select

from lookalike.services.bench.search import free_port, start_server
from lookalike.services.catalog.models import Image
from lookalike.services.config import Settings
from lookalike.services.sample import build_sample
from lookalike.services.setup import init_catalog, open_runtime
from tests.conftest import _fresh_postgres_database
from tests.services.conftest import ingest_into, make_settings
from tests.services.workers.test_celery_faults import catalog_counts, stop, worker_env

pytestmark = [pytest.mark.slow, pytest.mark.integration]

JOB_TIMEOUT_S = 300
OUTAGE_S = 5


class RedisServer:
    """A private redis-server that can be stopped and started again on the same port, with
    the same data (its append-only file lives in `directory`)."""

    def __init__(self, directory: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is not installed (apt-get install redis-server)",
                        pytrace=False)
        self.binary = binary
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen | None = None
        directory.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1",
             "--dir", str(self.directory), "--appendonly", "yes", "--save", "",
             "--logfile", str(self.directory / "redis.log")])
        client = redis.Redis(port=self.port, socket_connect_timeout=1)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if client.ping():
                    return
            except redis.exceptions.ConnectionError:
                time.sleep(0.1)
        pytest.fail(f"redis-server did not answer on port {self.port}: "
                    f"{(self.directory / 'redis.log').read_text()[-2000:]}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)


def start_worker(settings: Settings, log: Path) -> subprocess.Popen:
    """`lookalike worker` on this test's broker, in its own process group."""
    assert settings.broker_url is not None
    env = {**worker_env(settings), "LOOKALIKE_BROKER_URL": settings.broker_url}
    return subprocess.Popen([sys.executable, "-m", "lookalike.services.cli",
                             "worker", "--concurrency", "1"],
                            env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
                            start_new_session=True)


@pytest.fixture
def cluster(tmp_path: Path, photo_dir: Path) -> Iterator[tuple[httpx.Client, RedisServer,
                                                                Settings, Path]]:
    """A PostgreSQL catalog holding the photos, a private Redis, one worker and one API."""
    broker = RedisServer(tmp_path / "redis")
    broker.start()
    database = _fresh_postgres_database()
    settings = make_settings(tmp_path / "home", next(database), broker_url=broker.url,
                             job_batch_size=16, job_visibility_timeout_s=10,
                             job_queue=f"lookalike-test-{secrets.token_hex(4)}",
                             ingest_roots=[tmp_path, photo_dir])
    init_catalog(settings)
    runtime = open_runtime(settings)
    ingest_into(runtime, photo_dir)
    runtime.close()
    worker = start_worker(settings, tmp_path / "worker.log")
    port = free_port()
    server = start_server(settings, port, extra_env={
        "LOOKALIKE_BROKER_URL": broker.url, "LOOKALIKE_JOB_QUEUE": settings.job_queue,
        "LOOKALIKE_JOB_BATCH_SIZE": str(settings.job_batch_size),
        "LOOKALIKE_INGEST_ROOTS": f"{tmp_path},{photo_dir}"})
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            yield client, broker, settings, tmp_path
    finally:
        server.terminate()
        server.wait(timeout=30)
        stop(worker)
        broker.stop()
        next(database, None)


def job_state(client: httpx.Client, job_id: int) -> dict:
    answer = client.get(f"/v1/jobs/{job_id}")
    assert answer.status_code == 200, answer.text
    return answer.json()


def wait_for_end(client: httpx.Client, job_id: int, root: Path) -> dict:
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while time.monotonic() < deadline:
        shown = job_state(client, job_id)
        if shown["state"] not in ("queued", "running"):
            return shown
        time.sleep(0.5)
    log = (root / "worker.log").read_text()[-4000:]
    pytest.fail(f"job {job_id} did not end in {JOB_TIMEOUT_S} s: {shown}\n{log}")


def file_shas(*folders: Path) -> set[str]:
    return {hashlib.sha256(path.read_bytes()).hexdigest()
            for folder in folders for path in folder.rglob("*") if path.is_file()}


def test_redis_stopped_mid_job_loses_nothing_doubles_nothing_and_api_says_so(
        cluster, photo_dir: Path) -> None:
    client, broker, settings, root = cluster
    runtime = open_runtime(settings)
    with runtime.session() as session:
        photo_id = session.scalar(select(Image.id).order_by(Image.id).limit(1))
    build_sample(root / "data", fashion_per_class=30)
    submitted = client.post("/v1/jobs", json={"kind": "ingest", "paths": [str(root / "data")],
                                              "label_from_dir": True})
    assert submitted.status_code == 202, submitted.text
    job_id = submitted.json()["id"]
    while job_state(client, job_id)["progress"]["done"] == 0:
        time.sleep(0.1)

    broker.stop()
    shown = job_state(client, job_id)
    assert shown["progress"]["done"] < shown["progress"]["total"], "job ended before the stop"
    found = client.post("/v1/search", params={"k": 1}, json={"image_id": photo_id})
    health = client.get("/healthz")
    refused = client.post("/v1/jobs", json={"kind": "ingest", "paths": [str(photo_dir)]})
    time.sleep(OUTAGE_S)
    broker.start()

    assert found.status_code == 200 and found.json()["results"][0]["image_id"] == photo_id
    assert health.status_code == 200, health.text
    assert health.json()["status"] == "degraded"
    assert health.json()["broker"].startswith("unreachable")
    assert refused.status_code == 503 and refused.json()["error"] == "broker_unavailable"
    shown = wait_for_end(client, job_id, root)
    assert shown["state"] == "succeeded", shown
    assert shown["counts"]["failed"] == 0
    assert shown["progress"]["done"] == shown["progress"]["total"]
    assert client.get("/healthz").json() == {"status": "ok", "catalog": "ok", "broker": "ok"}
    unsent = client.get("/v1/jobs", params={"limit": 1}).json()[0]
    assert unsent["id"] != job_id and unsent["state"] == "failed"
    assert "could not be queued" in unsent["error"]
    assert client.post(f"/v1/jobs/{unsent['id']}/retry").status_code == 202
    assert wait_for_end(client, unsent["id"], root)["state"] == "succeeded"

    images, shas, embeddings, doubled = catalog_counts(runtime)
    with runtime.session() as session:
        catalogued = set(session.scalars(select(Image.sha256)))
        newest = session.scalars(select(Image.id).order_by(Image.id.desc()).limit(5)).all()
    runtime.close()
    assert images == shas == embeddings and doubled == 0
    assert catalogued == file_shas(photo_dir, root / "data")
    for image_id in newest:
        answer = client.post("/v1/search", params={"k": 1}, json={"image_id": image_id})
        assert answer.json()["results"][0]["image_id"] == image_id
