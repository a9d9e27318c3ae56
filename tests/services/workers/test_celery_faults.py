"""Celery workers over the real Redis and PostgreSQL: a worker SIGKILLed mid-job loses
nothing and adds nothing twice; concurrent ingests of the same files add each image once;
a fine-tuning job's epochs run one after another."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from lookalike.services.catalog.models import Embedding, Image
from lookalike.services.config import Settings
from lookalike.services.jobs import runner as jobs
from lookalike.services.runtime import Runtime
from lookalike.services.sample import build_sample
from lookalike.services.search.query import search_vector
from lookalike.services.setup import init_catalog, open_runtime
from lookalike.services.training.request import FinetuneRequest
from tests.conftest import _fresh_postgres_database
from tests.services.conftest import make_settings

pytestmark = [pytest.mark.slow, pytest.mark.integration]

REDIS_URL = os.environ.get("LOOKALIKE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
JOB_TIMEOUT_S = 240


def worker_env(settings: Settings) -> dict[str, str]:
    return {**os.environ, "LOOKALIKE_HOME": str(settings.home),
            "LOOKALIKE_DATABASE_URL": settings.catalog_url,
            "LOOKALIKE_BROKER_URL": REDIS_URL, "LOOKALIKE_JOB_QUEUE": settings.job_queue,
            "LOOKALIKE_JOB_VISIBILITY_TIMEOUT_S": str(settings.job_visibility_timeout_s),
            "LOOKALIKE_DECODE_WORKERS": "1", "LOOKALIKE_TORCH_THREADS": "1"}


def start_worker(settings: Settings, log: Path) -> subprocess.Popen:
    """`lookalike worker` in its own process group (SIGKILL reaches its pool process too)."""
    return subprocess.Popen([sys.executable, "-m", "lookalike.services.cli",
                             "worker", "--concurrency", "1"],
                            env=worker_env(settings), stdout=log.open("wb"),
                            stderr=subprocess.STDOUT, start_new_session=True)


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Runtime, Path, list]]:
    """A PostgreSQL catalog, a sample folder of real images and two workers on one queue."""
    root = tmp_path_factory.mktemp("celery")
    build_sample(root / "data", fashion_per_class=25)
    database = _fresh_postgres_database()
    url = next(database)
    settings = make_settings(root / "home", url, broker_url=REDIS_URL, job_batch_size=24,
                             job_queue=f"lookalike-test-{secrets.token_hex(4)}",
                             job_visibility_timeout_s=15)
    init_catalog(settings)
    workers = [start_worker(settings, root / f"worker{i}.log") for i in range(2)]
    runtime = open_runtime(settings)
    yield runtime, root, workers
    runtime.close()
    for worker in workers:
        stop(worker)
    next(database, None)


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


def test_a_worker_killed_mid_job_loses_nothing_and_adds_nothing_twice(cluster) -> None:
    runtime, root, workers = cluster
    job = jobs.submit_ingest(runtime, paths=[str(root / "data")], label_from_dir=True)
    while jobs.get_job(runtime, job.id).progress_done == 0:
        assert workers[0].poll() is None and workers[1].poll() is None, "a worker died early"
        time.sleep(0.2)
    os.killpg(workers[0].pid, signal.SIGKILL)
    workers[0].wait()
    shown = wait_for_end(runtime, job.id, workers, root)
    assert shown["state"] == "succeeded", shown
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


def test_two_concurrent_ingests_of_the_same_files_add_each_image_once(cluster) -> None:
    runtime, root, workers = cluster
    workers[0] = start_worker(runtime.settings, root / "worker0.log")
    folder = root / "data" / "photos"
    before = catalog_counts(runtime)[0]
    first = jobs.submit_ingest(runtime, paths=[str(folder)], collection="again")
    second = jobs.submit_ingest(runtime, paths=[str(folder)], collection="again")
    for job in (first, second):
        assert wait_for_end(runtime, job.id, workers, root)["state"] == "succeeded"
    images, shas, embeddings, doubled = catalog_counts(runtime)
    assert images == shas == embeddings == before and doubled == 0


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
