"""`bench search`: search-by-id latency over HTTP against a real server, next to raw FAISS."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx
import numpy as np

from lookalike.services.bench.httpload import prepare_search, sequential
from lookalike.services.catalog import embeddings as embedding_queries
from lookalike.services.config import Settings
from lookalike.services.errors import CatalogEmpty
from lookalike.services.index.replicas import vectors_from_bytes
from lookalike.services.setup import open_runtime
from lookalike.services.spaces.lookup import find_space


@dataclass(frozen=True)
class SearchBench:
    queries: int
    k: int
    vectors: int
    http_p50_ms: float
    http_p99_ms: float
    faiss_p50_ms: float
    faiss_p99_ms: float

    def to_public(self) -> dict:
        return asdict(self)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


LISTEN, ESTABLISHED = "0A", "01"  # TCP states as /proc/net/tcp writes them


def tcp_sockets(port: int, state: str) -> set[str]:
    """Inodes of this machine's IPv4 TCP sockets in `state` whose local port is `port`."""
    rows = Path("/proc/net/tcp").read_text().splitlines()[1:]
    return {fields[9] for fields in map(str.split, rows)
            if int(fields[1].split(":")[1], 16) == port and fields[3] == state}


def start_server(settings: Settings, port: int, extra_env: dict[str, str] | None = None,
                 timeout_s: float = 120.0, log: Path | None = None,
                 workers: int | None = 1) -> subprocess.Popen:
    """A real `lookalike serve` process (with `workers` server processes; None: as the
    settings say) on the same catalog; returns once /healthz answers and every process
    listens (each on its own socket), so that nothing times a server still starting. Its
    log lines (standard output) go to `log`."""
    # A crash in native code (OpenVINO, FAISS) then prints the Python stack of every thread.
    env = {**os.environ, "LOOKALIKE_HOME": str(settings.home), "PYTHONFAULTHANDLER": "1",
           **(extra_env or {})}
    processes = workers or int(env.get("LOOKALIKE_SERVE_WORKERS", settings.serve_workers))
    if settings.database_url:
        env["LOOKALIKE_DATABASE_URL"] = settings.database_url
    process = subprocess.Popen(
        [sys.executable, "-m", "lookalike.services.cli", "serve", "--port", str(port),
         *(["--workers", str(workers)] if workers else [])], env=env,
        stdout=log.open("ab") if log else subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with status {process.returncode} (negative: "
                               f"killed by that signal): "
                               f"{process.stderr.read().decode()[-2000:]}")
        try:
            answered = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code
        except httpx.TransportError:
            answered = None
        if answered == 200 and len(tcp_sockets(port, LISTEN)) >= processes:
            return process
        time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"server did not answer /healthz with all {processes} processes "
                       f"listening within {timeout_s:.0f} s")


def percentiles_ms(samples: list[float]) -> tuple[float, float]:
    """p50 and p99 in milliseconds of durations in seconds."""
    values = np.array(samples) * 1000
    return float(np.percentile(values, 50)), float(np.percentile(values, 99))


def run_search_bench(settings: Settings, *, queries: int, k: int, seed: int = 0) -> SearchBench:
    """Time the same search-by-id queries over HTTP and directly on the FAISS index."""
    with open_runtime(settings) as runtime:
        with runtime.session() as session:
            space = find_space(session=session, name=None)
            ids = sorted(embedding_queries.embedded_image_ids(session=session, space_id=space.id))
            if not ids:
                raise CatalogEmpty("the catalog has no vectors to search; ingest images first")
            chosen = np.random.default_rng(seed).choice(ids, size=queries, replace=True)
            blobs = [embedding_queries.get_vector(session=session, space_id=space.id,
                                                  image_id=int(i)) for i in chosen]
            replica = runtime.replica(space, session=session)
        vectors = vectors_from_bytes(blobs, space.dim)
        faiss_times = []
        for row in vectors:
            started = time.perf_counter()
            replica.search(row[None, :], k)
            faiss_times.append(time.perf_counter() - started)
    port = free_port()
    server = start_server(settings, port)
    try:
        http_times = time_search_by_id(port, chosen, k)
    finally:
        server.terminate()
        server.wait(timeout=30)
    http = percentiles_ms(http_times)
    raw = percentiles_ms(faiss_times)
    return SearchBench(queries=queries, k=k, vectors=replica.ntotal, http_p50_ms=http[0],
                       http_p99_ms=http[1], faiss_p50_ms=raw[0], faiss_p99_ms=raw[1])


def time_search_by_id(port: int, ids: np.ndarray, k: int) -> list[float]:
    """Sequential requests on one keep-alive connection, after a warm-up request (the lean
    client of services/bench/httpload.py, so the figure is the server's)."""
    requests = [prepare_search(port, k=k, json={"image_id": int(i)}) for i in ids]
    return sequential(port, requests, count=len(requests))
