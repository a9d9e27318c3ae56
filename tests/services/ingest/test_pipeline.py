"""Ingest on a real SQLite catalog: dedup, failures with reasons, every image findable."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from lookalike.services.catalog import images as image_queries
from lookalike.services.search.query import search_vector
from lookalike.services.setup import init_catalog, open_runtime
from tests import imagefactory
from tests.services.conftest import ingest_into, make_settings

pytestmark = pytest.mark.slow


def bad_files(directory: Path) -> dict[str, str]:
    """Unusable files and the failure kind each must be reported with."""
    directory.mkdir(parents=True, exist_ok=True)
    cases = {
        "notes.txt.jpg": (imagefactory.not_an_image(), "not_an_image"),
        "empty.jpg": (imagefactory.empty(), "empty"),
        "truncated.jpg": (imagefactory.truncated_jpeg(), "truncated"),
        "bomb.png": (imagefactory.bomb_png(40000, 40000), "too_many_pixels"),
    }
    for name, (data, _) in cases.items():
        (directory / name).write_bytes(data)
    return {str((directory / name).resolve()): kind for name, (_, kind) in cases.items()}


def test_ingest_reports_added_duplicates_and_failures(tmp_path: Path, photo_dir: Path) -> None:
    settings = make_settings(tmp_path / "home")
    init_catalog(settings)
    runtime = open_runtime(settings)
    expected_failures = bad_files(tmp_path / "bad")
    photos = sorted(photo_dir.glob("*.jpg"))
    shutil.copy(photos[0], tmp_path / "bad" / "same-bytes-again.jpg")

    first = ingest_into(runtime, photo_dir, tmp_path / "bad")

    assert first.added == len(photos)
    assert first.duplicates == 1
    assert first.failed == len(expected_failures)
    failed = {o.source: o.reason for o in first.outcomes if o.status == "failed"}
    assert set(failed) == set(expected_failures)
    assert "40000x40000" in failed[str((tmp_path / "bad" / "bomb.png").resolve())]
    second = ingest_into(runtime, photo_dir)
    assert (second.added, second.duplicates, second.failed) == (0, len(photos), 0)
    with runtime.session() as session:
        assert image_queries.count_images(session=session, status="embedded") == len(photos)
    runtime.close()


def test_every_ingested_photo_finds_itself_first(photo_home, photo_dir: Path) -> None:
    for path in sorted(photo_dir.glob("*.jpg")):
        result = search_vector(photo_home, space_name=None, k=3, query=path.read_bytes())
        assert result.results[0].source == str(path.resolve())
        assert result.results[0].score == pytest.approx(1.0, abs=1e-3)


def test_failed_rows_hold_the_reason(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "home")
    init_catalog(settings)
    runtime = open_runtime(settings)
    bad_files(tmp_path / "bad")
    ingest_into(runtime, tmp_path / "bad")
    with runtime.session() as session:
        rows = image_queries.list_images(session=session, status="failed", limit=100)
    assert len(rows) == 4
    assert all(row.error for row in rows)
    assert not any(row.status == "pending" for row in rows)
    runtime.close()


def test_list_file_and_label_from_dir(tmp_path: Path, photo_dir: Path) -> None:
    folder = tmp_path / "cats"
    folder.mkdir()
    for path in sorted(photo_dir.glob("c*.jpg")):
        shutil.copy(path, folder / path.name)
    listing = tmp_path / "list.txt"
    listing.write_text("# one path per line\ncats\n")
    settings = make_settings(tmp_path / "home")
    init_catalog(settings)
    runtime = open_runtime(settings)
    summary = ingest_into(runtime, listing, label_from_dir=True)
    with runtime.session() as session:
        rows = image_queries.list_images(session=session, limit=100)
    runtime.close()
    assert summary.added == len(list(folder.iterdir())) > 0
    assert {row.label for row in rows} == {"cats"}


def test_an_overlong_folder_name_fails_only_its_own_files(tmp_path: Path,
                                                          photo_dir: Path) -> None:
    photos = sorted(photo_dir.glob("*.jpg"))
    overlong, short = tmp_path / "data" / ("x" * 201), tmp_path / "data" / "cats"
    overlong.mkdir(parents=True)
    short.mkdir()
    shutil.copy(photos[0], overlong / photos[0].name)
    for path in photos[1:3]:
        shutil.copy(path, short / path.name)
    settings = make_settings(tmp_path / "home")
    init_catalog(settings)
    runtime = open_runtime(settings)
    summary = ingest_into(runtime, tmp_path / "data", label_from_dir=True)
    runtime.close()
    assert (summary.added, summary.failed) == (2, 1)
    [failed] = [o for o in summary.outcomes if o.status == "failed"]
    assert failed.source == str((overlong / photos[0].name).resolve())
    assert "201 characters" in (failed.reason or "") and "200" in (failed.reason or "")
    assert len([p for p in settings.layout.originals.rglob("*") if p.is_file()]) == 2
