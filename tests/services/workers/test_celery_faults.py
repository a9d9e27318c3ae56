"""Celery workers over the real Redis and PostgreSQL: a worker SIGKILLed while it holds a
batch loses nothing (the batch is redelivered to the other worker) and adds nothing twice,
on either vector backend;
two ingests of the same new files, started together on two workers, add each image once; a
fine-tuning job's epochs run one after another."""

from __future__ import annotations

import os
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage
from sqlalchemy import func, select

from lookalike.services.catalog.models import Embedding, Image
from lookalike.services.config import Settings
from lookalike.services.index.verify import verify_all
from lookalike.services.jobs import runner as jobs
from lookalike.services.runtime import Runtime
from lookalike.services.sample import build_sample
from lookalike.services.search.query import search_vector
from lookalike.services.setup import init_catalog, open_runtime
from lookalike.services.training.request import FinetuneRequest
from tests.conftest import _fresh_postgres_database
from tests.milvus_server import milvus_lite_server
from tests.services.conftest import make_settings

pytestmark = [pytest.mark.slow, pytest.mark.integration]

REDIS_URL = os.environ.get("LOOKALIKE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
JOB_TIMEOUT_S = 240
NEW_PICTURES = 20  # fewer than a batch (24): each job is one batch, one per worker
RECEIVED = re.compile(r"Task lookalike\.ingest_batch\[([0-9a-f-]+)\] received")
ENDED = re.compile(r"Task lookalike\.ingest_batch\[([0-9a-f-]+)\] (?:succeeded|raised|retry)")


def worker_env(settings: Settings) -> dict[str, str]:
    return {**os.environ, "LOOKALIKE_HOME": str(settings.home),
            "LOOKALIKE_DATABASE_URL": settings.catalog_url,
            "LOOKALIKE_BROKER_URL": REDIS_URL, "LOOKALIKE_JOB_QUEUE": settings.job_queue,
            "LOOKALIKE_JOB_VISIBILITY_TIMEOUT_S": str(settings.job_visibility_timeout_s),
            "LOOKALIKE_DECODE_WORKERS": "1", "LOOKALIKE_TORCH_THREADS": "1"}


def start_worker(settings: Settings, log: Path,
                 env: dict[str, str] | None = None) -> subprocess.Popen:
    """`lookalike worker` in its own process group (SIGKILL reaches its pool process too)."""
    return subprocess.Popen([sys.executable, "-m", "lookalike.services.cli",
                             "worker", "--concurrency", "1"],
                            env={**worker_env(settings), **(env or {})}, stdout=log.open("wb"),
                            stderr=subprocess.STDOUT, start_new_session=True)


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@contextmanager
def running_cluster(root: Path, **backend: str) -> Iterator[tuple[Runtime, Path, list]]:
    """A PostgreSQL catalog, a sample folder of real images and two workers on one queue,
    the default space on the given vector backend."""
    build_sample(root / "data", fashion_per_class=12)  # six batches of 24
    database = _fresh_postgres_database()
    url = next(database)
    settings = make_settings(root / "home", url, broker_url=REDIS_URL, job_batch_size=24,
                             job_queue=f"lookalike-test-{secrets.token_hex(4)}",
                             job_visibility_timeout_s=15, **backend)
    init_catalog(settings)
    env = {f"LOOKALIKE_{name.upper()}": value for name, value in backend.items()}
    workers = [start_worker(settings, root / f"worker{i}.log", env) for i in range(2)]
    runtime = open_runtime(settings)
    yield runtime, root, workers
    runtime.close()
    for worker in workers:
        stop(worker)
    next(database, None)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Runtime, Path, list]]:
    with running_cluster(tmp_path_factory.mktemp("celery")) as running:
        yield running


@pytest.fixture(scope="module")
def milvus_cluster(tmp_path_factory: pytest.TempPathFactory
                   ) -> Iterator[tuple[Runtime, Path, list]]:
    """The same, with the default space in one Milvus the workers and this process share."""
    root = tmp_path_factory.mktemp("celery-milvus")
    with milvus_lite_server(root / "milvus") as uri, \
            running_cluster(root, vector_backend="milvus", milvus_uri=uri) as running:
        yield running


def wait_for_end(runtime: Runtime, job_id: int, workers: list, root: Path) -> dict:
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while time.monotonic() < deadline:
        shown = jobs.describe(jobs.get_job(runtime, job_id))
        if shown["state"] not in ("queued", "running"):
            return shown
        time.sleep(0.5)
    logs = "\n".join((root / f"worker{i}.log").read_text()[-3000:] for i in range(2))
    pytest.fail(f"job {job_id} did not end in {JOB_TIMEOUT_S} s: {shown}\n{logs}")


def catalog_counts(runtime: Runtime) -> tuple[int, int, int, int]:
    """Image rows, distinct sha256, embedding rows, images with more than one embedding."""
    with runtime.session() as session:
        images = session.scalar(select(func.count()).select_from(Image))
        shas = session.scalar(select(func.count(func.distinct(Image.sha256))))
        embeddings = session.scalar(select(func.count()).select_from(Embedding))
        doubled = session.scalar(select(func.count()).select_from(
            select(Embedding.image_id).group_by(Embedding.space_id, Embedding.image_id)
            .having(func.count() > 1).subquery()))
    return images, shas, embeddings, doubled


def tasks_in_log(log: Path) -> tuple[list[str], set[str]]:
    """The ids of the batch tasks a worker's log shows received (in order) and ended."""
    text = log.read_text(errors="replace")
    return RECEIVED.findall(text), set(ENDED.findall(text))


def held_tasks(log: Path) -> set[str]:
    """The tasks a worker received and had not finished, by its log."""
    received, ended = tasks_in_log(log)
    return set(received) - ended


def wait_for(condition: Callable[[], object], what: str) -> None:
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within {JOB_TIMEOUT_S} s")
        time.sleep(0.05)


def test_a_worker_killed_mid_job_loses_nothing_and_adds_nothing_twice(cluster) -> None:
    kill_a_worker_mid_job(*cluster)


def kill_a_worker_mid_job(runtime: Runtime, root: Path, workers: list) -> None:
    """SIGKILL worker 0 while it holds a batch of an ingest job; the job still succeeds with
    every image once in the catalog and once in the space's index."""
    job = jobs.submit_ingest(runtime, paths=[str(root / "data")], label_from_dir=True)

    def holding_a_batch() -> bool:
        assert workers[0].poll() is None and workers[1].poll() is None, "a worker died early"
        return (jobs.get_job(runtime, job.id).progress_done > 0
                and bool(held_tasks(root / "worker0.log")))

    wait_for(holding_a_batch, "worker 0 holding a batch after the first was recorded")
    os.killpg(workers[0].pid, signal.SIGKILL)
    workers[0].wait()
    held = held_tasks(root / "worker0.log")  # final: its process is gone
    assert held, "the kill landed between two batches; nothing was held"
    shown = wait_for_end(runtime, job.id, workers, root)
    assert shown["state"] == "succeeded", shown
    # A batch whose rows were committed before the kill is not needed for the job to end:
    # its message comes back when the visibility timeout lapses, perhaps after the job ended,
    # and must then run to an end on worker 1 without adding anything.
    wait_for(lambda: held <= tasks_in_log(root / "worker1.log")[1],
             "the held batch redelivered to worker 1 and run to an end")
    shown = jobs.describe(jobs.get_job(runtime, job.id))
    assert shown["state"] == "succeeded", shown
    # The held batch was reserved, perhaps not yet started (a reservation records no
    # attempt): it ran once more if it had started, never fewer times than there are batches.
    assert shown["attempts"] >= shown["batches"]["total"], shown
    counts = shown["counts"]
    assert counts["failed"] == 0 and shown["progress"]["done"] == shown["progress"]["total"]
    images, shas, embeddings, doubled = catalog_counts(runtime)
    assert images == shas == embeddings and doubled == 0
    files = [p for p in (root / "data").rglob("*") if p.is_file()]
    assert images == len({p.read_bytes() for p in files})
    with runtime.session() as session:
        some = session.scalars(select(Image.id).order_by(Image.id).limit(3)).all()
    for image_id in some:
        assert search_vector(runtime, space_name=None, k=1,
                             image_id=image_id).results[0].image_id == image_id
    reports = verify_all(runtime)
    assert reports and all(report.ok for report in reports), [r.advice() for r in reports]


def write_new_pictures(folder: Path, count: int) -> None:
    """`count` PNGs of random colour blocks, unlike any image catalogued before."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(secrets.randbits(32))
    for index in range(count):
        blocks = rng.integers(0, 256, size=(8, 8, 3), dtype=np.uint8)
        pixels = np.kron(blocks, np.ones((8, 8, 1), dtype=np.uint8))
        PILImage.fromarray(pixels).save(folder / f"new-{index}.png")


def test_two_ingests_of_new_files_started_together_add_each_image_once(cluster) -> None:
    runtime, root, workers = cluster
    workers[0] = start_worker(runtime.settings, root / "worker0.log")
    wait_for(lambda: "ready." in (root / "worker0.log").read_text(errors="replace"),
             "the restarted worker 0 getting ready")
    folder = root / "new"
    write_new_pictures(folder, NEW_PICTURES)
    before = catalog_counts(runtime)[0]
    together = threading.Barrier(2)

    def submit() -> int:
        together.wait(timeout=30)
        return jobs.submit_ingest(runtime, paths=[str(folder)], collection="together").id

    with ThreadPoolExecutor(max_workers=2) as pool:
        job_ids = [future.result(timeout=60) for future in
                   [pool.submit(submit) for _ in range(2)]]
    for job_id in job_ids:
        shown = wait_for_end(runtime, job_id, workers, root)
        assert shown["state"] == "succeeded" and shown["counts"]["failed"] == 0, shown
    first, second = (jobs.get_job(runtime, job_id) for job_id in job_ids)
    assert first.started_at < second.finished_at and second.started_at < first.finished_at, \
        "the two ingests did not run at the same time"
    images, shas, embeddings, doubled = catalog_counts(runtime)
    assert images == shas == embeddings == before + NEW_PICTURES and doubled == 0


def test_a_finetune_job_runs_its_epochs_in_order_on_the_workers(cluster) -> None:
    runtime, root, workers = cluster
    workers[0] = workers[0] if workers[0].poll() is None else start_worker(
        runtime.settings, root / "worker0.log")
    ingest = jobs.submit_ingest(runtime, paths=[str(root / "data" / "fashion-mnist")],
                                label_from_dir=True)
    assert wait_for_end(runtime, ingest.id, workers, root)["state"] == "succeeded"
    job = jobs.submit_finetune(runtime, FinetuneRequest(space="workers-head", method="head",
                                                        loss="softmax", epochs=3))
    shown = wait_for_end(runtime, job.id, workers, root)
    assert shown["state"] == "succeeded", shown
    assert [row["epoch"] for row in shown["training"]["history"]] == [1, 2, 3]
    assert shown["training"]["space"] == "workers-head"


def test_a_worker_killed_mid_job_on_a_milvus_space_leaves_milvus_equal_to_the_catalog(
        milvus_cluster) -> None:
    kill_a_worker_mid_job(*milvus_cluster)
