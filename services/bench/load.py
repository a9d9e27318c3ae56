"""`bench load`: concurrent clients against two API processes while images are ingested, by a
Celery worker taking a job sent through the API when a broker is configured, else by a
`lookalike ingest` process."""

from __future__ import annotations

import asyncio
import io
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx
import numpy as np

from lookalike.services.bench.ingest import write_photo_files
from lookalike.services.bench.processes import child_env, drop_queue, queue_env, tail
from lookalike.services.bench.search import free_port, start_server
from lookalike.services.catalog import embeddings as embedding_queries
from lookalike.services.config import Settings
from lookalike.services.errors import BenchFailed, CatalogEmpty
from lookalike.services.sample import bundled_photos
from lookalike.services.setup import open_runtime
from lookalike.services.spaces.lookup import find_space

log = logging.getLogger(__name__)

CELERY_WORKER = "celery-worker"
INGEST_PROCESS = "ingest-process"
# An ingester imports torch, connects and opens the catalog before its first batch, slowly
# on a machine busy with the two API processes starting.
WORKER_READY_TIMEOUT_S = 180.0
STOP_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class RouteLoad:
    route: str
    requests: int
    per_s: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    errors_5xx: int
    errors_other: int


@dataclass(frozen=True)
class LoadBench:
    clients: int
    seconds: float
    servers: int
    ingester: str
    job_id: int | None
    routes: list[RouteLoad]
    ingested_during: int
    new_images_checked: int
    new_images_found_first: int

    def to_public(self) -> dict:
        return asdict(self)


def _embedded_ids(settings: Settings) -> set[int]:
    with open_runtime(settings) as runtime, runtime.session() as session:
        space = find_space(session=session, name=None)
        ids = embedding_queries.embedded_image_ids(session=session, space_id=space.id)
    return ids


def _query_uploads() -> list[bytes]:
    """JPEG bytes of the bundled photos, the upload queries."""
    uploads = []
    for photo in bundled_photos():
        buffer = io.BytesIO()
        photo.image.convert("RGB").resize((640, 480)).save(buffer, format="JPEG", quality=90)
        uploads.append(buffer.getvalue())
    return uploads


async def _client(client_id: int, urls: list[str], ids: list[int], uploads: list[bytes],
                  deadline: float, samples: dict[str, list[tuple[float, int]]]) -> None:
    """One client: alternate search by id and by upload, and the two servers, until deadline."""
    rng = np.random.default_rng(client_id)
    async with httpx.AsyncClient(timeout=60) as client:
        turn = client_id
        while time.monotonic() < deadline:
            url = urls[turn % len(urls)]
            started = time.perf_counter()
            if turn % 2:
                route = "search-by-upload"
                data = uploads[int(rng.integers(len(uploads)))]
                answer = await client.post(f"{url}/v1/search", params={"k": 10},
                                           files={"file": ("q.jpg", data)})
            else:
                route = "search-by-id"
                answer = await client.post(f"{url}/v1/search", params={"k": 10},
                                           json={"image_id": int(rng.choice(ids))})
            samples[route].append((time.perf_counter() - started, answer.status_code))
            turn += 1


def _route_load(route: str, samples: list[tuple[float, int]], seconds: float) -> RouteLoad:
    times = np.array([t for t, _ in samples]) * 1000
    statuses = [status for _, status in samples]
    return RouteLoad(route=route, requests=len(samples), per_s=len(samples) / seconds,
                     p50_ms=float(np.percentile(times, 50)), p95_ms=float(np.percentile(times, 95)),
                     p99_ms=float(np.percentile(times, 99)),
                     errors_5xx=sum(s >= 500 for s in statuses),
                     errors_other=sum(400 <= s < 500 for s in statuses))


def _check_new_images(urls: list[str], new_ids: list[int]) -> int:
    """How many images added during the run each server finds first when searched by id."""
    found = 0
    with httpx.Client(timeout=60) as client:
        for image_id in new_ids:
            answers = [client.post(f"{url}/v1/search", params={"k": 1},
                                   json={"image_id": image_id}).json() for url in urls]
            found += all(a["results"][0]["image_id"] == image_id for a in answers)
    return found


def run_load_bench(settings: Settings, *, clients: int, seconds: float,
                   ingest_images: int, check: int = 50) -> LoadBench:
    """Drive two `lookalike serve` processes for `seconds` while images are ingested: by a
    `lookalike worker` when a broker is configured, else by a `lookalike ingest` process."""
    before = _embedded_ids(settings)
    if not before:
        raise CatalogEmpty("the catalog has no vectors to search; ingest images first")
    broker_env = queue_env(settings)
    samples: dict[str, list[tuple[float, int]]] = {"search-by-id": [], "search-by-upload": []}
    with tempfile.TemporaryDirectory(prefix="lookalike-load-") as tmp, \
            _servers(settings, {**broker_env, **_bench_env(Path(tmp))}) as urls:
        photos = Path(tmp) / "photos"
        write_photo_files(photos, ingest_images, seed=int(time.time()))
        ingesting = (_worker_ingest(settings, broker_env, urls[0], photos, Path(tmp) / "worker.log")
                     if broker_env else _ingest_process(settings, photos))
        with ingesting as job_id:
            uploads = _query_uploads()
            deadline = time.monotonic() + seconds
            asyncio.run(_gather(clients, urls, sorted(before), uploads, deadline, samples))
            new_ids = sorted(_embedded_ids(settings) - before)
        chosen = [int(i) for i in np.random.default_rng(0).permutation(new_ids)[:check]]
        found = _check_new_images(urls, chosen)
    routes = [_route_load(route, rows, seconds) for route, rows in samples.items()]
    return LoadBench(clients=clients, seconds=seconds, servers=len(urls),
                     ingester=CELERY_WORKER if broker_env else INGEST_PROCESS, job_id=job_id,
                     routes=routes, ingested_during=len(new_ids),
                     new_images_checked=len(chosen), new_images_found_first=found)


def _bench_env(root: Path) -> dict[str, str]:
    """Settings of the bench's API processes: every client here shares one address, so the
    per-address rate limits are lifted (the bench measures throughput, not the limits), and
    the ingest job may read the bench's own folder."""
    unlimited = "1000000/second"
    return {"LOOKALIKE_INGEST_ROOTS": str(root), "LOOKALIKE_RATE_SEARCH": unlimited,
            "LOOKALIKE_RATE_SEARCH_UPLOAD": unlimited, "LOOKALIKE_RATE_INGEST": unlimited}


@contextmanager
def _servers(settings: Settings, extra_env: dict[str, str], count: int = 2
             ) -> Iterator[list[str]]:
    """`count` `lookalike serve` processes on the catalog for the block; yields their URLs."""
    processes, urls = [], []
    try:
        for _ in range(count):
            port = free_port()
            processes.append(start_server(settings, port, extra_env=extra_env))
            urls.append(f"http://127.0.0.1:{port}")
        yield urls
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=30)


@contextmanager
def _ingest_process(settings: Settings, photos: Path) -> Iterator[None]:
    """A `lookalike ingest` process over `photos` for the block (no job: yields None), once
    it has committed its first batch (the default space's change log has moved), so that
    its start-up is not counted as time spent ingesting under load."""
    runtime = open_runtime(settings)
    with runtime.session() as session:
        space_id = find_space(session=session, name=None).id
        start = embedding_queries.latest_seq(session=session, space_id=space_id)
    process = subprocess.Popen([sys.executable, "-m", "lookalike.services.cli",
                                "ingest", str(photos)],
                               env=child_env(settings, {}), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + WORKER_READY_TIMEOUT_S
        while True:
            with runtime.session() as session:
                if embedding_queries.latest_seq(session=session, space_id=space_id) > start:
                    break
            if process.poll() is not None or time.monotonic() > deadline:
                raise BenchFailed("`lookalike ingest` committed nothing before it "
                                  f"{'exited' if process.poll() is not None else 'timed out'};"
                                  f" run `lookalike ingest {photos}` to see why")
            time.sleep(0.5)
        yield None
    finally:
        runtime.close()
        process.terminate()
        process.wait(timeout=STOP_TIMEOUT_S)


@contextmanager
def _worker_ingest(settings: Settings, broker_env: dict[str, str], url: str, photos: Path,
                   log_path: Path) -> Iterator[int]:
    """A `lookalike worker` on this run's queue ingesting `photos` as a job submitted to the
    API at `url`; yields the job's id once the worker has taken it. Afterwards the job is
    cancelled, the worker stopped and the batches left on the queue dropped."""
    with log_path.open("wb") as out:
        worker = subprocess.Popen(
            [sys.executable, "-m", "lookalike.services.cli", "worker", "--concurrency", "1"],
            env=child_env(settings, broker_env), stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True)
    job_id = None
    try:
        job_id = _submit_ingest(url, photos)
        _wait_until_taken(url, job_id, worker, log_path)
        yield job_id
    finally:
        if job_id is not None:
            _cancel(url, job_id)
        _stop_worker(worker)
        drop_queue(settings, broker_env["LOOKALIKE_JOB_QUEUE"])


def _submit_ingest(url: str, photos: Path) -> int:
    """Submit the ingest of `photos` through the API (POST /v1/jobs); the job's id."""
    answer = httpx.post(f"{url}/v1/jobs", json={"kind": "ingest", "paths": [str(photos)]},
                        timeout=60)
    if answer.status_code != 202:
        raise BenchFailed(f"POST /v1/jobs answered {answer.status_code}: {answer.text[:500]}")
    return int(answer.json()["id"])


def _wait_until_taken(url: str, job_id: int, worker: subprocess.Popen, log_path: Path) -> None:
    """Return once the worker has started the job (its state left 'queued'); BenchFailed
    with the end of the worker's log when it exits first or takes too long."""
    deadline = time.monotonic() + WORKER_READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            raise BenchFailed(f"`lookalike worker` exited with status {worker.returncode} "
                              f"before taking job {job_id}; its log ends:\n{tail(log_path)}")
        if httpx.get(f"{url}/v1/jobs/{job_id}", timeout=30).json()["state"] != "queued":
            return
        time.sleep(0.2)
    raise BenchFailed(f"`lookalike worker` did not take job {job_id} within "
                      f"{WORKER_READY_TIMEOUT_S:.0f} s; its log ends:\n{tail(log_path)}")


def _cancel(url: str, job_id: int) -> None:
    """Cancel the job unless it has ended: the worker skips the batches not started yet."""
    try:
        answer = httpx.post(f"{url}/v1/jobs/{job_id}/cancel", timeout=30)
    except httpx.HTTPError as exc:
        log.warning("could not cancel job %d: %s", job_id, exc)
        return
    if answer.status_code not in (200, 409):
        log.warning("cancelling job %d answered %d: %s", job_id, answer.status_code,
                    answer.text[:500])


def _stop_worker(worker: subprocess.Popen) -> None:
    """Warm shutdown (the batch in hand finishes); the whole process group is killed if that
    takes longer than STOP_TIMEOUT_S."""
    worker.terminate()
    try:
        worker.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()


async def _gather(clients: int, urls: list[str], ids: list[int], uploads: list[bytes],
                  deadline: float, samples: dict[str, list[tuple[float, int]]]) -> None:
    await asyncio.gather(*(_client(i, urls, ids, uploads, deadline, samples)
                           for i in range(clients)))
