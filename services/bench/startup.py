"""`bench startup`: how long a fresh process takes to serve searches on N vectors, from the
newest snapshot plus the change log after it, and from the catalog alone (no snapshot)."""

from __future__ import annotations

import gc
import logging
import time
from dataclasses import asdict, dataclass

import httpx

from lookalike.retrieval.index.faiss_index import VectorIndex
from lookalike.services.bench.catalog import throwaway_catalog
from lookalike.services.bench.search import free_port, start_server
from lookalike.services.bench.synthetic import add_synthetic_images
from lookalike.services.catalog import embeddings as embedding_queries
from lookalike.services.catalog import spaces as space_queries
from lookalike.services.catalog.models import Space
from lookalike.services.config import Settings
from lookalike.services.index.replicas import IndexReplica, space_directory
from lookalike.services.runtime import Runtime
from lookalike.services.search.query import search_vector
from lookalike.services.setup import open_runtime
from lookalike.services.spaces.lookup import default_space_definition, find_space

log = logging.getLogger(__name__)

FACTORY = "Flat"
SERVER_START_TIMEOUT_S = 1800.0


@dataclass(frozen=True)
class StartupBench:
    """Seconds (and ms for single searches) measured on one throw-away catalog."""

    vectors: int
    dim: int
    changes_after_snapshot: int
    database: str
    fill_s: float
    snapshot_write_s: float
    snapshot_mb: float
    snapshot_open_s: float
    snapshot_first_search_ms: float
    rebuild_open_s: float
    rebuild_first_search_ms: float
    server_snapshot_first_search_s: float | None
    server_rebuild_first_search_s: float | None

    def to_public(self) -> dict:
        return asdict(self)


def _bench_space(runtime: Runtime, settings: Settings, dim: int) -> Space:
    """The catalog's default space as a new catalog gets it (the configured backbone, its
    weights and the engine new spaces get), with vectors of `dim` values (searches by id
    never run the model; a server still loads it at start, as in production)."""
    definition = default_space_definition(settings)
    options = definition.options.model_copy(update={"index_factory": FACTORY})
    data = definition.model_copy(update={"name": f"bench-startup-{dim}", "dim": dim,
                                         "options": options})
    with runtime.session() as session:
        space = space_queries.create_space(session=session, data=data)
        session.commit()
    return space


def _fill_and_snapshot(settings: Settings, *, vectors: int, dim: int, changes: int,
                       seed: int) -> tuple[float, float, float, int]:
    """Fill the space, snapshot the index built on the way, then add `changes` more.

    Returns fill seconds, snapshot seconds, snapshot MB and an id to search for."""
    with open_runtime(settings) as runtime:
        space = _bench_space(runtime, settings, dim)
        index = VectorIndex(dim, factory=FACTORY)
        started = time.perf_counter()
        for batch in add_synthetic_images(runtime, space_id=space.id, dim=dim, count=vectors,
                                          seed=seed):
            index.add(batch.ids, batch.vectors)
        fill_s = time.perf_counter() - started
        with runtime.session() as session:
            watermark = embedding_queries.latest_seq(session=session, space_id=space.id)
            replica = IndexReplica(space=space, index=index, watermark=watermark,
                                   directory=space_directory(settings.layout.indexes, space))
            started = time.perf_counter()
            manifest = replica.snapshot(session, keep=settings.snapshot_keep,
                                        layout=settings.layout)
            session.commit()
            snapshot_s = time.perf_counter() - started
        probe = int(index.ids()[0])
        del replica, index
        for _ in add_synthetic_images(runtime, space_id=space.id, dim=dim, count=changes,
                                      seed=seed + 1):
            pass
    return fill_s, snapshot_s, manifest.size / 2**20, probe


def _open_and_search(settings: Settings, probe: int) -> tuple[float, float]:
    """A fresh runtime: seconds to open the default space's replica, ms of the first search."""
    with open_runtime(settings) as runtime:
        started = time.perf_counter()
        with runtime.session() as session:
            runtime.replica(find_space(session=session, name=None), session=session)
        open_s = time.perf_counter() - started
        started = time.perf_counter()
        result = search_vector(runtime, space_name=None, k=10, image_id=probe)
        search_ms = (time.perf_counter() - started) * 1000
    del runtime
    gc.collect()  # free this replica's memory before the next one is loaded
    _check_hit(result.results[0].image_id if result.results else None, probe)
    return open_s, search_ms


def _check_hit(found: int | None, probe: int) -> None:
    if found != probe:
        raise RuntimeError(f"search by id {probe} found {found} first; the index is wrong")


def _server_first_search(settings: Settings, probe: int) -> float:
    """Seconds from starting `lookalike serve` to its first search-by-id answer."""
    started = time.perf_counter()
    port = free_port()
    server = start_server(settings, port, timeout_s=SERVER_START_TIMEOUT_S)
    try:
        answer = httpx.post(f"http://127.0.0.1:{port}/v1/search", params={"k": 10},
                            json={"image_id": probe}, timeout=600)
        answer.raise_for_status()
        elapsed = time.perf_counter() - started
    finally:
        server.terminate()
        server.wait(timeout=60)
    _check_hit(answer.json()["results"][0]["image_id"], probe)
    return elapsed


def run_startup_bench(settings: Settings, *, vectors: int, dim: int, changes: int,
                      postgres: str | None, server: bool, seed: int = 0) -> StartupBench:
    """Fill a throw-away catalog with `vectors` random unit vectors, snapshot them, add
    `changes` more, then time fresh runtimes (and servers) with and without the snapshot."""
    if vectors < 1 or dim < 1 or changes < 0:
        raise ValueError(f"need vectors >= 1, dim >= 1, changes >= 0; got {vectors}, {dim}, "
                         f"{changes}")
    with throwaway_catalog(settings, postgres=postgres) as fresh:
        # An explicit URL, so that servers started here never read another from the env.
        bench = fresh.model_copy(update={"database_url": fresh.catalog_url})
        fill_s, snapshot_s, snapshot_mb, probe = _fill_and_snapshot(
            bench, vectors=vectors, dim=dim, changes=changes, seed=seed)
        log.info("filled %d vectors in %.1f s; snapshot %.0f MB in %.1f s", vectors, fill_s,
                 snapshot_mb, snapshot_s)
        # The same catalog with an empty home: no snapshot, so the replica is rebuilt.
        bare = bench.model_copy(update={"home": bench.home.parent / "bare",
                                        "database_url": bench.catalog_url})
        snapshot_open_s, snapshot_ms = _open_and_search(bench, probe)
        rebuild_open_s, rebuild_ms = _open_and_search(bare, probe)
        server_snapshot = _server_first_search(bench, probe) if server else None
        server_rebuild = _server_first_search(bare, probe) if server else None
    return StartupBench(
        vectors=vectors, dim=dim, changes_after_snapshot=changes,
        database="postgresql" if postgres else "sqlite", fill_s=fill_s,
        snapshot_write_s=snapshot_s, snapshot_mb=snapshot_mb, snapshot_open_s=snapshot_open_s,
        snapshot_first_search_ms=snapshot_ms, rebuild_open_s=rebuild_open_s,
        rebuild_first_search_ms=rebuild_ms, server_snapshot_first_search_s=server_snapshot,
        server_rebuild_first_search_s=server_rebuild)
