"""`lookalike storage verify [--fix]` as a user runs it: files no row names, rows whose file
is missing or changed, and what --fix does about each."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from lookalike.services.setup import init_catalog, open_runtime
from tests.services.cli.test_cli import lookalike
from tests.services.conftest import InProcessCli, ingest_into, make_settings

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def stored(home: Path) -> list[tuple[int, Path, str]]:
    """(id, stored file, status) of every image, straight from the SQLite file, where the
    stored path is recorded relative to the home."""
    with sqlite3.connect(home / "catalog.db") as db:
        rows = db.execute("SELECT id, stored_path, status FROM image ORDER BY id").fetchall()
    return [(image_id, home / path, status) for image_id, path, status in rows]


def test_verify_reports_orphans_missing_and_changed_files_and_fix_settles_them(
        tmp_path: Path, photo_dir: Path, lookalike_in_process: InProcessCli) -> None:
    """The report is a real `lookalike` subprocess (exit status 1); the other runs of the
    command go through its entry point in this process."""
    home, photos = tmp_path / "home", tmp_path / "photos"
    photos.mkdir()
    for path in sorted(photo_dir.glob("*.jpg"))[:3]:
        shutil.copy(path, photos / path.name)
    settings = make_settings(home)
    init_catalog(settings)
    with open_runtime(settings) as runtime:
        assert ingest_into(runtime, photos).added == 3
    assert lookalike_in_process(home, "storage", "verify").returncode == 0
    (missing, missing_path, _), (changed, changed_path, _), _ = stored(home)
    missing_path.unlink()
    changed_path.write_bytes(bytes(changed_path.stat().st_size))
    orphans = [settings.layout.originals / "ab" / "cd" / f"abcd{'0' * 60}.jpg",
               settings.layout.thumbnails / "12" / "34" / f"1234{'0' * 60}.jpg",
               settings.layout.whitening / f"{'5' * 64}.npz"]
    for orphan in orphans:
        orphan.parent.mkdir(parents=True, exist_ok=True)
        orphan.write_bytes(b"nobody's")

    report = lookalike(home, "storage", "verify", check=False)
    assert report.returncode == 1, report.stderr
    for orphan in orphans:
        assert f"orphan {orphan}" in report.stdout
    assert f"missing {missing_path} (image {missing})" in report.stdout
    assert f"corrupt {changed_path} (image {changed})" in report.stdout
    assert all(orphan.exists() for orphan in orphans)

    fixed = lookalike_in_process(home, "storage", "verify", "--fix", check=False)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert "removed 3 orphan files" in fixed.stdout
    assert f"marked images {missing}, {changed} failed" in fixed.stdout
    assert not any(orphan.exists() for orphan in orphans)
    statuses = {image_id: status for image_id, _, status in stored(home)}
    assert (statuses[missing], statuses[changed]) == ("failed", "failed")
    again = lookalike_in_process(home, "storage", "verify")
    assert "no problems" in again.stdout
