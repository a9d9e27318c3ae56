"""`lookalike duplicates` on the bundled photos plus edited copies of two of them."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lookalike.retrieval.training.copyedits import apply_edit
from lookalike.services.errors import InvalidRequest
from lookalike.services.index.duplicates import delete_extras, find_duplicates
from lookalike.services.jobs.runner import list_jobs
from lookalike.services.runtime import Runtime
from lookalike.services.sample import bundled_photos
from tests.services.conftest import InProcessCli, ingest_into


def add_copies(runtime: Runtime, folder: Path) -> None:
    """Two edited copies of the astronaut and one of the coffee photo, ingested."""
    folder.mkdir()
    photos = {p.name: p.image for p in bundled_photos()}
    apply_edit(photos["astronaut"], "jpeg", 1, strength=0.9).save(folder / "a1.png")
    apply_edit(photos["astronaut"], "overlay_text", 2, strength=0.5).save(folder / "a2.png")
    apply_edit(photos["coffee"], "colour_jitter", 3, strength=0.5).save(folder / "c1.png")
    assert ingest_into(runtime, folder).failed == 0


def by_source(report_clusters: list[dict]) -> list[list[str]]:
    return [sorted(Path(s).name for s in c["sources"]) for c in report_clusters]


def test_copies_cluster_with_their_originals(photo_home: Runtime, tmp_path: Path) -> None:
    add_copies(photo_home, tmp_path / "copies")
    report = find_duplicates(photo_home, space_name=None, threshold=0.9)
    assert report.threshold_from == "given" and report.images == 26
    clusters = by_source(report.to_public()["clusters"])
    assert ["a1.png", "a2.png", "astronaut.jpg"] in clusters
    assert ["c1.png", "coffee.jpg"] in clusters
    rows = list(csv.DictReader(io.StringIO(_csv(report))))
    assert sum(int(r["keep"]) for r in rows) == len(report.clusters)
    assert report.extras == len(rows) - len(report.clusters)
    deleted = delete_extras(photo_home, report)
    after = find_duplicates(photo_home, space_name=None, threshold=0.9)
    assert len(deleted) == report.extras and after.clusters == []
    assert after.images == report.images - len(deleted)


def _csv(report) -> str:
    stream = io.StringIO()
    report.write_csv(stream)
    return stream.getvalue()


def test_without_a_calibration_a_threshold_is_asked_for(photo_home: Runtime) -> None:
    with pytest.raises(InvalidRequest, match="--threshold"):
        find_duplicates(photo_home, space_name=None)


def test_the_command_prints_json(photo_home: Runtime, tmp_path: Path) -> None:
    add_copies(photo_home, tmp_path / "copies")
    env = {**os.environ, "LOOKALIKE_HOME": str(photo_home.settings.home)}
    env.pop("LOOKALIKE_DATABASE_URL", None)
    out = subprocess.run([sys.executable, "-m", "lookalike.services.cli", "duplicates",
                          "--threshold", "0.9", "--json", "-"], env=env, check=True,
                         capture_output=True, text=True, timeout=300).stdout
    assert ["c1.png", "coffee.jpg"] in by_source(json.loads(out)["clusters"])


def test_the_command_runs_as_a_job(photo_home: Runtime, tmp_path: Path,
                                   lookalike_in_process: InProcessCli,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The job runs through the command's entry point in this process; the refusal is a real
    `lookalike` subprocess."""
    add_copies(photo_home, tmp_path / "copies")
    env = {**os.environ, "LOOKALIKE_HOME": str(photo_home.settings.home)}
    env.pop("LOOKALIKE_DATABASE_URL", None)
    env.pop("LOOKALIKE_BROKER_URL", None)
    monkeypatch.delenv("LOOKALIKE_BROKER_URL", raising=False)
    out = lookalike_in_process(photo_home.settings.home, "duplicates", "--threshold", "0.9",
                               "--job").stdout
    [job] = list_jobs(photo_home)
    assert job.kind == "duplicates" and job.state == "succeeded"
    summary = job.result.clusters
    assert summary is not None and summary["images"] == 26
    assert f"job {job.id} succeeded: {summary['clusters']} clusters" in out
    refused = subprocess.run([sys.executable, "-m", "lookalike.services.cli", "duplicates",
                              "--threshold", "0.9", "--job", "--delete-extras"],
                             env={**env, "COLUMNS": "400"},
                             capture_output=True, text=True, timeout=300)
    assert refused.returncode != 0 and "--job keeps its clusters" in refused.stderr
