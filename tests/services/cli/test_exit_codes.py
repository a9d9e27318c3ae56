"""What a script sees from the command on bad input or a failed job: a non-zero exit status
and a line saying what was wrong, never a traceback."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from tests.services.conftest import InProcessCli

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def test_a_missing_query_file_is_a_usage_error(tmp_path: Path,
                                               lookalike_in_process: InProcessCli) -> None:
    home = tmp_path / "home"
    lookalike_in_process(home, "init")
    missing = lookalike_in_process(home, "search", str(tmp_path / "nope.jpg"), check=False)
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    folder = lookalike_in_process(home, "search", str(tmp_path), check=False)
    assert folder.returncode == 2 and "is a directory" in folder.stderr
    assert "Traceback" not in missing.stderr + folder.stderr


def test_detect_train_refuses_a_file_that_is_not_coco_before_any_job(
        tmp_path: Path, lookalike_in_process: InProcessCli) -> None:
    home = tmp_path / "home"
    lookalike_in_process(home, "init")
    text = tmp_path / "notes.json"
    text.write_text("not json")
    refused = lookalike_in_process(home, "detect", "train", "--name", "d", "--coco", str(text),
                                   check=False)
    assert refused.returncode == 1
    assert "is not a COCO detection file" in refused.stdout + refused.stderr
    with sqlite3.connect(home / "catalog.db") as db:
        assert db.execute("SELECT count(*) FROM job").fetchone() == (0,)


def test_sample_scenes_refuses_a_visible_share_outside_0_to_1(
        tmp_path: Path, lookalike_in_process: InProcessCli) -> None:
    home = tmp_path / "home"
    refused = lookalike_in_process(home, "sample", "scenes", str(tmp_path / "scenes"),
                                   "--images", "2", "--min-visible", "1.5", check=False)
    assert refused.returncode == 2
    assert "min_visible must be within [0, 1]" in refused.stdout + refused.stderr
    assert not (tmp_path / "scenes" / "annotations.json").exists()


def test_a_detect_train_job_that_fails_exits_1(tmp_path: Path,
                                               lookalike_in_process: InProcessCli) -> None:
    home = tmp_path / "home"
    lookalike_in_process(home, "init")
    lookalike_in_process(home, "sample", "scenes", str(tmp_path / "scenes"), "--images", "2",
                         "--size", "64")
    moved = tmp_path / "annotations-alone"
    moved.mkdir()
    shutil.copy(tmp_path / "scenes" / "annotations.json", moved)  # its images are not beside it
    failed = lookalike_in_process(home, "detect", "train", "--name", "d", "--coco",
                                  str(moved / "annotations.json"), "--size", "64",
                                  "--epochs", "1", check=False)
    assert failed.returncode == 1
    assert "failed" in failed.stdout and "scene-00000.png" in failed.stdout
