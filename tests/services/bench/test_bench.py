"""The benchmark commands run end to end and print their figures (values are not asserted)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from lookalike.services.setup import init_catalog, open_runtime
from tests.conftest import POSTGRES_ADMIN_URL
from tests.services.conftest import InProcessCli, ingest_into, make_settings

pytestmark = [pytest.mark.slow, pytest.mark.integration]

# A Redis database of its own (the Celery fault tests use 0).
BENCH_REDIS_URL = "redis://127.0.0.1:6379/3"


def bench(home: Path, *args: str) -> dict:
    env = {**os.environ, "LOOKALIKE_HOME": str(home)}
    env.pop("LOOKALIKE_DATABASE_URL", None)
    env.pop("LOOKALIKE_BROKER_URL", None)
    run = subprocess.run([sys.executable, "-m", "lookalike.services.cli",
                          "bench", *args, "--json"], env=env,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout)


@pytest.fixture
def bench_here(lookalike_in_process: InProcessCli, monkeypatch: pytest.MonkeyPatch
               ) -> Callable[..., dict]:
    """`bench` through the command's entry point in this process (the other bench commands
    run as real subprocesses): `bench load` starts its own server and ingest processes."""

    def run(home: Path, *args: str) -> dict:
        monkeypatch.delenv("LOOKALIKE_BROKER_URL", raising=False)
        done = lookalike_in_process(home, "bench", *args, "--json", check=False)
        assert done.returncode == 0, done.stderr[-3000:]
        return json.loads(done.stdout)

    return run


@pytest.fixture(scope="module")
def photo_catalog(tmp_path_factory: pytest.TempPathFactory, photo_dir: Path) -> Path:
    settings = make_settings(tmp_path_factory.mktemp("bench") / "home")
    init_catalog(settings)
    runtime = open_runtime(settings)
    ingest_into(runtime, photo_dir)
    runtime.close()
    return settings.home


def test_bench_ingest_reports_the_three_throughputs(tmp_path: Path) -> None:
    figures = bench(tmp_path / "unused", "ingest", "--images", "48", "--naive-images", "8")
    assert figures["images"] == 48
    for key in ("model_only_per_s", "end_to_end_per_s", "naive_per_s"):
        assert figures[key] > 0
    assert figures["e2e_over_model"] == pytest.approx(
        figures["end_to_end_per_s"] / figures["model_only_per_s"], rel=1e-2)


def test_bench_forward_reports_each_call_size(tmp_path: Path) -> None:
    figures = bench(tmp_path / "unused", "forward", "--sizes", "1,4", "--images", "8")
    assert figures["images"] == 8
    assert set(figures["images_per_s"]) == {"1", "4"}
    assert all(rate > 0 for rate in figures["images_per_s"].values())


def test_bench_search_reports_http_and_faiss_latency(photo_catalog: Path) -> None:
    figures = bench(photo_catalog, "search", "--queries", "20")
    assert figures["queries"] == 20 and figures["vectors"] >= 15
    assert figures["http_p99_ms"] >= figures["http_p50_ms"] > figures["faiss_p50_ms"]


def test_bench_speed_reports_engines_and_search_ratios(tmp_path: Path) -> None:
    figures = bench(tmp_path / "unused", "speed", "--seconds", "0.6", "--sample-per-class", "1",
                    "--queries", "5", "--clients", "2")
    assert figures["best_engine"] in figures["engines_per_s"]
    assert "torch-fp32-eager" in figures["engines_per_s"]
    assert figures["catalog_images"] == 33 and figures["clients"] == 2
    assert figures["upload_p50_over_decode_forward"] > 0 and figures["by_id_p50_ms"] > 0
    assert set(figures["draft_cosine"]) == {"12mp", "800x600"}
    assert figures["machine"]["cores"] >= 1


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


STARTUP_FIGURES = ("fill_s", "snapshot_write_s", "snapshot_mb", "snapshot_open_s",
                   "snapshot_first_search_ms", "rebuild_open_s", "rebuild_first_search_ms")


def test_bench_startup_times_a_fresh_process_with_and_without_a_snapshot(tmp_path: Path) -> None:
    figures = bench(tmp_path / "unused", "startup", "--vectors", "2000", "--dim", "64",
                    "--changes", "100")
    assert (figures["vectors"], figures["dim"], figures["changes_after_snapshot"]) == (
        2000, 64, 100)
    assert figures["database"] == "sqlite"
    for key in (*STARTUP_FIGURES, "server_snapshot_first_search_s",
                "server_rebuild_first_search_s"):
        assert figures[key] > 0, key


def bench_databases() -> set[str]:
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        rows = admin.execute("SELECT datname FROM pg_database WHERE datname LIKE %s",
                             ("lookalike_bench_%",)).fetchall()
    return {name for (name,) in rows}


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
