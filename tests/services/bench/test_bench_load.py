"""`bench load` end to end (search clients while an ingest process or a Celery worker
adds images), and the load and startup benches on PostgreSQL in throw-away databases (values
are not asserted)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import POSTGRES_ADMIN_URL
from tests.services.bench.conftest import (
    BENCH_REDIS_URL,
    STARTUP_FIGURES,
    bench,
    bench_databases,
)

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def test_bench_load_has_no_server_errors_and_finds_new_images(
        photo_catalog: Path, bench_here: Callable[..., dict]) -> None:
    # The ingest process has committed a batch before the clients start, so a short window
    # still searches while it ingests and finds images added during the run.
    figures = bench_here(photo_catalog, "load", "--clients", "4", "--seconds", "4",
                         "--ingest-images", "40")
    assert {route["route"] for route in figures["routes"]} == {"search-by-id",
                                                              "search-by-upload"}
    assert all(route["errors_5xx"] == 0 and route["requests"] > 0
               for route in figures["routes"])
    assert figures["ingester"] == "ingest-process" and figures["job_id"] is None
    assert figures["ingested_during"] > 0
    assert figures["new_images_found_first"] == figures["new_images_checked"] > 0


def test_bench_load_with_a_broker_ingests_through_a_celery_worker(
        photo_catalog: Path, bench_here: Callable[..., dict]) -> None:
    # The clients start once the worker has taken the job, before it commits anything: the
    # window must outlast the worker's first batch (4 s did not, under load).
    figures = bench_here(photo_catalog, "load", "--broker", BENCH_REDIS_URL,
                         "--clients", "4", "--seconds", "12", "--ingest-images", "60")
    assert figures["ingester"] == "celery-worker" and figures["job_id"] > 0
    assert all(route["errors_5xx"] == 0 and route["requests"] > 0
               for route in figures["routes"])
    assert figures["ingested_during"] > 0
    assert figures["new_images_found_first"] == figures["new_images_checked"] > 0


def test_bench_startup_on_postgres_drops_its_throw_away_database(tmp_path: Path) -> None:
    before = bench_databases()
    figures = bench(tmp_path / "unused", "startup", "--vectors", "2000", "--dim", "64",
                    "--changes", "100", "--no-server", "--postgres", POSTGRES_ADMIN_URL)
    assert figures["database"] == "postgresql"
    assert all(figures[key] > 0 for key in STARTUP_FIGURES)
    assert figures["server_snapshot_first_search_s"] is None
    assert not bench_databases() - before


def test_bench_load_on_postgres_runs_in_a_throw_away_database(
        tmp_path: Path, bench_here: Callable[..., dict]) -> None:
    before = bench_databases()
    figures = bench_here(tmp_path / "unused", "load", "--postgres", POSTGRES_ADMIN_URL,
                    "--sample-per-class", "2", "--clients", "2", "--seconds", "4",
                    "--ingest-images", "12")
    assert all(route["errors_5xx"] == 0 and route["requests"] > 0
               for route in figures["routes"])
    assert not bench_databases() - before
