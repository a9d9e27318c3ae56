"""FAISS's OpenMP thread count is LOOKALIKE_INDEX_THREADS in every `lookalike` process: it
is read once, as FAISS loads, so the command sets it before any command module imports it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

WARNING = "FAISS runs"


@pytest.fixture()
def env(tmp_path: Path) -> dict[str, str]:
    """A fresh home, and one more index thread than cores: never what OpenMP picks itself."""
    base = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    base.update(LOOKALIKE_HOME=str(tmp_path / "home"),
                LOOKALIKE_INDEX_THREADS=str((os.cpu_count() or 1) + 1))
    subprocess.run([sys.executable, "-m", "lookalike.services.cli", "init"], env=base,
                   check=True, capture_output=True)
    return base


def test_a_lookalike_command_runs_faiss_on_the_index_threads_setting(
        env: dict[str, str]) -> None:
    done = subprocess.run([sys.executable, "-m", "lookalike.services.cli", "spaces", "list"],
                          env=env, capture_output=True, text=True, check=True)
    assert WARNING not in done.stderr


def test_a_process_that_loaded_faiss_first_is_told_how_to_set_its_threads(
        env: dict[str, str]) -> None:
    """The check that makes the first test mean something: FAISS imported before the
    runtime opens keeps OpenMP's own count, and the operator is told what to set."""
    script = ("import faiss\n"
              "from lookalike.services.config import Settings\n"
              "from lookalike.services.setup import open_runtime\n"
              "open_runtime(Settings()).close()\n")
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, check=True)
    wanted = env["LOOKALIKE_INDEX_THREADS"]
    assert f"not {wanted}" in done.stderr
    assert f"OMP_NUM_THREADS={wanted}" in done.stderr
