"""The `lookalike` command as a user runs it: real subprocesses on a real catalog (and, for
the long JSON walk, its entry point in this process)."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lookalike.services.sample import build_sample
from tests.services.conftest import InProcessCli

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def lookalike(home: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "LOOKALIKE_HOME": str(home)}
    env.pop("LOOKALIKE_DATABASE_URL", None)
    return subprocess.run([sys.executable, "-m", "lookalike.services.cli",
                           *args], env=env, check=check,
                          capture_output=True, text=True, timeout=600)


def catalog_counts(home: Path) -> tuple[int, int, int]:
    """(rows, distinct sha256, embeddings) straight from the SQLite file."""
    with sqlite3.connect(home / "catalog.db") as db:
        rows, shas = db.execute("SELECT count(*), count(DISTINCT sha256) FROM image").fetchone()
        (vectors,) = db.execute("SELECT count(*) FROM embedding").fetchone()
    return rows, shas, vectors


def test_search_json_is_the_api_answer(tmp_path: Path, photo_dir: Path,
                                       lookalike_in_process: InProcessCli) -> None:
    """The first search is a real subprocess (its stdout is the JSON alone); the other
    commands run in this process through the command's entry point."""
    home = tmp_path / "home"
    cli = lookalike_in_process
    cli(home, "init")
    out = cli(home, "ingest", str(photo_dir), "--collection", "photos").stdout
    assert "added" in out and "failed 0" in out
    query = sorted(photo_dir.glob("*.jpg"))[0]
    answer = json.loads(lookalike(home, "search", str(query), "-k", "3", "--json").stdout)
    assert set(answer) == {"space", "took_ms", "qe", "dba", "mode", "facets", "verified",
                           "results"}
    assert (answer["qe"], answer["dba"]) == (False, False)
    assert answer["results"][0]["source"] == str(query.resolve())
    assert answer["results"][0]["thumbnail_url"].endswith("/thumbnail")
    dba = json.loads(cli(home, "search", str(query), "-k", "3", "--dba", "--json").stdout)
    assert (dba["qe"], dba["dba"]) == (False, True)
    assert dba["results"][0]["source"] == str(query.resolve())
    checked = json.loads(cli(home, "search", str(query), "-k", "2", "--verify", "--json").stdout)
    assert checked["verified"] and checked["results"][0]["inliers"] > 100
    assert [r["score"] for r in dba["results"]] != [r["score"] for r in answer["results"]]
    refused = cli(home, "search", "--url", "http://127.0.0.1:9/q.jpg", check=False)
    assert refused.returncode == 1 and "LOOKALIKE_FETCH_ALLOW" in refused.stderr
    again = cli(home, "ingest", str(photo_dir)).stdout
    assert "nothing new" in again


def test_commands_before_init_say_what_to_do(tmp_path: Path, photo_dir: Path) -> None:
    result = lookalike(tmp_path / "home", "ingest", str(photo_dir), check=False)
    assert result.returncode == 1
    assert "lookalike init" in result.stderr


def test_an_invalid_setting_is_one_line_naming_it(tmp_path: Path) -> None:
    env = {**os.environ, "LOOKALIKE_HOME": str(tmp_path / "home"),
           "LOOKALIKE_INDEX_THREADS": "many"}
    result = subprocess.run([sys.executable, "-m", "lookalike.services.cli", "--help"],
                            env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 1
    assert "LOOKALIKE_INDEX_THREADS" in result.stderr
    assert "Traceback" not in result.stderr


def test_killed_ingest_finishes_on_rerun_without_duplicates(tmp_path: Path) -> None:
    data = tmp_path / "data"
    summary = build_sample(data, fashion_per_class=60)
    files = [p for p in data.rglob("*") if p.is_file()]
    home = tmp_path / "home"
    lookalike(home, "init")
    env = {**os.environ, "LOOKALIKE_HOME": str(home), "LOOKALIKE_BATCH_SIZE": "16"}
    process = subprocess.Popen([sys.executable, "-m", "lookalike.services.cli",
                                "ingest", str(data)], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and catalog_counts(home)[0] < 50:
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    interrupted = catalog_counts(home)
    assert 0 < interrupted[0] < len(files), (interrupted, summary)

    lookalike(home, "ingest", str(data))

    rows, shas, vectors = catalog_counts(home)
    assert rows == shas == vectors == len(files)


def test_serving_workers_on_a_port_in_use_says_so(tmp_path: Path) -> None:
    """`serve --workers 2` on a port another program listens on stops with a message that
    names the port, instead of joining that port's listeners (SO_REUSEPORT would let it)."""
    with socket.socket() as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = lookalike(tmp_path / "home", "serve", "--workers", "2", "--port", str(port),
                           check=False)
    assert result.returncode != 0
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "--port" in result.stderr
