"""The bench tests' shared parts: a bench command run as a subprocess or in this process,
a small photo catalog, and the throw-away PostgreSQL databases a bench leaves (none)."""

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

# A Redis database of its own (the Celery fault tests use 0).
BENCH_REDIS_URL = "redis://127.0.0.1:6379/3"

STARTUP_FIGURES = ("fill_s", "snapshot_write_s", "snapshot_mb", "snapshot_open_s",
                   "snapshot_first_search_ms", "rebuild_open_s", "rebuild_first_search_ms")


def bench(home: Path, *args: str) -> dict:
    """`lookalike bench ARGS --json` as a real subprocess on data folder `home`; its figures."""
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
    """A data folder whose catalog holds the test photos, once per test file."""
    settings = make_settings(tmp_path_factory.mktemp("bench") / "home")
    init_catalog(settings)
    runtime = open_runtime(settings)
    ingest_into(runtime, photo_dir)
    runtime.close()
    return settings.home


def bench_databases() -> set[str]:
    """The throw-away databases benches on PostgreSQL make (and must drop) that exist now."""
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        rows = admin.execute("SELECT datname FROM pg_database WHERE datname LIKE %s",
                             ("lookalike_bench_%",)).fetchall()
    return {name for (name,) in rows}
