"""`bench chaos`: a crash loop. Each round ingests new images (and some again) through a
Celery worker (an ingest job sent through the API) and through the API itself (uploads),
SIGKILLs the worker or the API at a random moment, restarts it, and checks the catalog, the
data folder and every space's index against what was sent: nothing missing, nothing that
was never sent, nothing twice, every job ended, `index verify` and `storage verify` clean."""

from __future__ import annotations

import io
import logging
import os
import random
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx
import numpy as np
from PIL import Image as PILImage
from sqlalchemy import func, select

from lookalike.retrieval.images import sha256_hex
from lookalike.services.bench.processes import child_env, drop_queue, queue_env, tail
from lookalike.services.bench.search import free_port, start_server
from lookalike.services.catalog import jobs as job_queries
from lookalike.services.catalog.models import Embedding, Image, Job
from lookalike.services.config import Settings
from lookalike.services.errors import BenchFailed
from lookalike.services.index.verify import verify_all
from lookalike.services.runtime import Runtime
from lookalike.services.setup import open_runtime
from lookalike.services.storage.verify import verify_storage

log = logging.getLogger(__name__)

ROUND_TIMEOUT_S = 180.0
STOP_TIMEOUT_S = 30.0
# A batch taken by a killed worker is handed out again after this many seconds.
VISIBILITY_TIMEOUT_S = 8
BATCH_SIZE = 3


@dataclass
class ChaosReport:
    """What the crash loop did and what it found."""

    rounds: int
    seed: int = 0
    survived: int = 0
    kills: dict[str, int] = field(default_factory=lambda: {"worker": 0, "api": 0})
    images_sent: int = 0
    uploads: int = 0
    upload_retries: int = 0
    jobs: int = 0
    jobs_succeeded: int = 0
    batches_redelivered: int = 0
    catalogued: int = 0
    missing: int = 0
    phantom: int = 0
    duplicated_vectors: int = 0
    unfinished_jobs: int = 0
    index_problems: list[str] = field(default_factory=list)
    storage_problems: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def clean(self) -> bool:
        return self.survived == self.rounds

    def to_public(self) -> dict:
        return {**asdict(self), "clean": self.clean}


def picture(rng: np.random.Generator) -> bytes:
    """A 64x64 PNG of random colour blocks: a new image each call."""
    blocks = rng.integers(0, 256, size=(8, 8, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    PILImage.fromarray(np.kron(blocks, np.ones((8, 8, 1), dtype=np.uint8))).save(
        buffer, format="PNG")
    return buffer.getvalue()


class Cluster:
    """One `lookalike serve` (on a fixed port, so clients find it again after a restart) and
    one `lookalike worker` on this run's own queue; either can be SIGKILLed and restarted."""

    def __init__(self, settings: Settings, root: Path, env: dict[str, str]) -> None:
        self.settings = settings
        self.root = root
        self.env = env
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.api: subprocess.Popen | None = None
        self.worker: subprocess.Popen | None = None

    def start_api(self) -> None:
        self.api = start_server(self.settings, self.port, extra_env=self.env,
                                timeout_s=ROUND_TIMEOUT_S, log=self.root / "api.log")

    def start_worker(self) -> None:
        with (self.root / "worker.log").open("ab") as out:
            self.worker = subprocess.Popen(
                [sys.executable, "-m", "lookalike.services.cli", "-v", "worker",
                 "--concurrency", "1"], env=child_env(self.settings, self.env), stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True)

    def kill(self, victim: str) -> None:
        """SIGKILL the API or the worker (with its process group: its pool's children)."""
        process = self.api if victim == "api" else self.worker
        assert process is not None, f"{victim} was never started"
        if process.poll() is None and victim == "worker":
            os.killpg(process.pid, signal.SIGKILL)
        elif process.poll() is None:
            process.kill()
        process.wait()
        log.info("%s SIGKILLed", victim)

    def restart(self, victim: str) -> None:
        if victim == "api":
            self.start_api()
        else:
            self.start_worker()

    def stop(self) -> None:
        for process in (self.api, self.worker):
            if process is not None and process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=STOP_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


def _post_until_answered(cluster: Cluster, path: str, deadline: float, **request: object
                         ) -> tuple[httpx.Response, int]:
    """POST to the API, trying again while it is down (killed, restarting); the answer and
    how many tries failed."""
    failed = 0
    while True:
        try:
            return httpx.post(f"{cluster.url}{path}", timeout=60, **request), failed
        except httpx.TransportError:
            failed += 1
            if time.monotonic() > deadline:
                raise BenchFailed(f"the API did not answer POST {path} for "
                                  f"{ROUND_TIMEOUT_S:.0f} s; its log ends:\n"
                                  f"{tail(cluster.root / 'api.log')}") from None
            time.sleep(0.2)


def _upload_all(cluster: Cluster, uploads: list[bytes], report: ChaosReport,
                deadline: float, errors: list[str]) -> None:
    """Upload each image until the API answers 200 or 201 (a killed API is retried)."""
    for data in uploads:
        answer, failed = _post_until_answered(cluster, "/v1/images", deadline,
                                              files={"file": ("chaos.png", data)})
        report.upload_retries += failed
        if answer.status_code not in (200, 201):
            errors.append(f"upload answered {answer.status_code}: {answer.text[:300]}")


def _wait_for_job(cluster: Cluster, job_id: int, deadline: float) -> dict:
    """The job once it is no longer queued or running (the API may be restarting)."""
    while time.monotonic() < deadline:
        try:
            shown = httpx.get(f"{cluster.url}/v1/jobs/{job_id}", timeout=30).json()
            if shown["state"] in job_queries.FINAL_STATES:
                return shown
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise BenchFailed(f"job {job_id} did not end within {ROUND_TIMEOUT_S:.0f} s; the worker's "
                      f"log ends:\n{tail(cluster.root / 'worker.log')}")


def _round(cluster: Cluster, rng: random.Random, images: int, sent: dict[str, bytes],
           report: ChaosReport, number: int) -> list[str]:
    """One round: a job and uploads in flight, one SIGKILL, a restart; the problems seen."""
    generator = np.random.default_rng(rng.randrange(2**32))
    folder = cluster.root / "sources" / f"round-{number}"
    folder.mkdir(parents=True)
    fresh = [picture(generator) for _ in range(images)]
    again = rng.sample(sorted(sent.values()), min(2, len(sent)))
    for index, data in enumerate(fresh + again):
        (folder / f"{index}.png").write_bytes(data)
    uploads = [picture(generator) for _ in range(max(1, images // 2))] + again[:1]
    sent.update({sha256_hex(data): data for data in fresh + uploads})
    report.images_sent = len(sent)
    report.uploads += len(uploads)
    deadline = time.monotonic() + ROUND_TIMEOUT_S
    answer, _ = _post_until_answered(cluster, "/v1/jobs", deadline,
                                     json={"kind": "ingest", "paths": [str(folder)]})
    if answer.status_code != 202:
        raise BenchFailed(f"POST /v1/jobs answered {answer.status_code}: {answer.text[:500]}")
    job_id = int(answer.json()["id"])
    report.jobs += 1
    errors: list[str] = []
    uploader = threading.Thread(target=_upload_all, name="chaos-uploads",
                                args=(cluster, uploads, report, deadline, errors))
    uploader.start()
    victim = rng.choice(["worker", "api"])
    time.sleep(rng.uniform(0.0, 3.0))
    cluster.kill(victim)
    report.kills[victim] += 1
    cluster.restart(victim)
    uploader.join(max(0.0, deadline - time.monotonic()))
    if uploader.is_alive():
        raise BenchFailed(f"the uploads of round {number} did not end in time")
    shown = _wait_for_job(cluster, job_id, deadline)
    if shown["state"] == "succeeded":
        report.jobs_succeeded += 1
    else:
        errors.append(f"job {job_id} ended {shown['state']}: {shown['error']}")
    return errors


def check_catalog(runtime: Runtime, sent: dict[str, bytes], report: ChaosReport) -> list[str]:
    """Compare the catalog, the files and every index with what was sent; the problems."""
    with runtime.read_session() as session:
        rows = session.execute(select(Image.sha256, Image.status)).all()
        doubled = session.scalar(select(func.count()).select_from(
            select(Embedding.space_id, Embedding.image_id)
            .group_by(Embedding.space_id, Embedding.image_id)
            .having(func.count() > 1).subquery()))
        jobs = list(session.scalars(select(Job)))
    embedded = {sha for sha, status in rows if status == "embedded"}
    report.catalogued = len(embedded)
    report.missing = len(set(sent) - embedded)
    report.phantom = len(embedded - set(sent)) + sum(status not in ("embedded", "deleted")
                                                     for _, status in rows)
    report.duplicated_vectors = doubled or 0
    report.unfinished_jobs = sum(job.state not in job_queries.FINAL_STATES for job in jobs)
    report.batches_redelivered = sum(max(0, job.attempts - job.result.batch_count)
                                     for job in jobs)
    report.index_problems = [f"{r.space}: {r.advice()}" for r in verify_all(runtime) if not r.ok]
    report.storage_problems = [str(f) for f in verify_storage(runtime).findings]
    problems = [f"{name}: {value}" for name, value in (
        ("missing images", report.missing), ("phantom images", report.phantom),
        ("duplicated vectors", report.duplicated_vectors),
        ("unfinished jobs", report.unfinished_jobs)) if value]
    return problems + report.index_problems + report.storage_problems


@contextmanager
def _cluster(settings: Settings, root: Path) -> Iterator[Cluster]:
    broker_env = queue_env(settings)
    if not broker_env:
        raise BenchFailed("the crash loop needs a Celery broker: pass --broker "
                          "redis://127.0.0.1:6379/0 or set LOOKALIKE_BROKER_URL")
    env = {**broker_env, "LOOKALIKE_INGEST_ROOTS": str(root / "sources"),
           "LOOKALIKE_JOB_BATCH_SIZE": str(BATCH_SIZE),
           "LOOKALIKE_JOB_VISIBILITY_TIMEOUT_S": str(VISIBILITY_TIMEOUT_S),
           "LOOKALIKE_DECODE_WORKERS": "0", "LOOKALIKE_TORCH_THREADS": "1",
           "LOOKALIKE_RATE_INGEST": "1000000/second", "LOOKALIKE_RATE_ADMIN": "1000000/second"}
    cluster = Cluster(settings, root, env)
    try:
        cluster.start_worker()
        cluster.start_api()
        yield cluster
    finally:
        cluster.stop()
        drop_queue(settings, broker_env["LOOKALIKE_JOB_QUEUE"])


def run_chaos(settings: Settings, *, rounds: int, images: int, seed: int | None = None
              ) -> tuple[ChaosReport, list[str]]:
    """Run the crash loop on the (empty, throw-away) catalog of `settings`; the report and the
    problems of the first round that had any (none when every round survived)."""
    started = time.perf_counter()
    chosen = seed if seed is not None else secrets.randbits(32)
    rng = random.Random(chosen)
    report = ChaosReport(rounds=rounds, seed=chosen)
    sent: dict[str, bytes] = {}
    problems: list[str] = []
    with tempfile.TemporaryDirectory(prefix="lookalike-chaos-") as tmp, \
            _cluster(settings, Path(tmp)) as cluster, open_runtime(settings) as runtime:
        for number in range(rounds):
            problems = _round(cluster, rng, images, sent, report, number)
            problems += check_catalog(runtime, sent, report)
            if problems:
                break
            report.survived += 1
    report.seconds = time.perf_counter() - started
    return report, problems
