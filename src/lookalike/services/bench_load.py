"""`bench load`: concurrent clients against two API processes while another process ingests."""

from __future__ import annotations

import asyncio
import io
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx
import numpy as np

from lookalike.services.bench_ingest import write_photo_files
from lookalike.services.bench_search import free_port, start_server
from lookalike.services.catalog import embeddings as embedding_queries
from lookalike.services.config import Settings
from lookalike.services.errors import CatalogEmpty
from lookalike.services.sample import bundled_photos
from lookalike.services.setup import open_runtime
from lookalike.services.spaces import find_space


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
    routes: list[RouteLoad]
    ingested_during: int
    new_images_checked: int
    new_images_found_first: int

    def to_public(self) -> dict:
        return asdict(self)


def _embedded_ids(settings: Settings) -> set[int]:
    runtime = open_runtime(settings)
    with runtime.session() as session:
        space = find_space(session=session, name=None)
        ids = embedding_queries.embedded_image_ids(session=session, space_id=space.id)
    runtime.close()
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
    """Drive two `lookalike serve` processes for `seconds` while `lookalike ingest` runs."""
    before = _embedded_ids(settings)
    if not before:
        raise CatalogEmpty("the catalog has no vectors to search; ingest images first")
    env = {**os.environ, "LOOKALIKE_HOME": str(settings.home)}
    if settings.database_url:
        env["LOOKALIKE_DATABASE_URL"] = settings.database_url
    servers, urls = [], []
    for _ in range(2):
        port = free_port()
        servers.append(start_server(settings, port))
        urls.append(f"http://127.0.0.1:{port}")
    samples: dict[str, list[tuple[float, int]]] = {"search-by-id": [], "search-by-upload": []}
    with tempfile.TemporaryDirectory(prefix="lookalike-load-") as tmp:
        write_photo_files(Path(tmp), ingest_images, seed=int(time.time()))
        ingest = subprocess.Popen([sys.executable, "-m", "lookalike", "ingest", tmp], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + seconds
            ids = sorted(before)
            uploads = _query_uploads()
            asyncio.run(_gather(clients, urls, ids, uploads, deadline, samples))
        finally:
            ingest.terminate()
            ingest.wait(timeout=60)
        new_ids = sorted(_embedded_ids(settings) - before)
        chosen = [int(i) for i in np.random.default_rng(0).permutation(new_ids)[:check]]
        try:
            found = _check_new_images(urls, chosen)
        finally:
            for server in servers:
                server.terminate()
                server.wait(timeout=30)
    routes = [_route_load(route, rows, seconds) for route, rows in samples.items()]
    return LoadBench(clients=clients, seconds=seconds, servers=len(servers), routes=routes,
                     ingested_during=len(new_ids), new_images_checked=len(chosen),
                     new_images_found_first=found)


async def _gather(clients: int, urls: list[str], ids: list[int], uploads: list[bytes],
                  deadline: float, samples: dict[str, list[tuple[float, int]]]) -> None:
    await asyncio.gather(*(_client(i, urls, ids, uploads, deadline, samples)
                           for i in range(clients)))
