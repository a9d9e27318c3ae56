"""A home filled from one working directory with a relative LOOKALIKE_HOME, then moved, is
served whole from another directory: originals, thumbnails, search, explain, reindex."""

from __future__ import annotations

import shutil
import sqlite3
import time
from pathlib import Path

import httpx
import pytest

from lookalike.services.bench.search import free_port, start_server
from lookalike.services.config import Settings
from lookalike.services.index.snapshots import snapshot_all
from lookalike.services.setup import init_catalog, open_runtime
from lookalike.services.spaces.create import SpaceDefinition, create_space
from lookalike.services.storage.verify import verify_storage
from tests import imagefactory
from tests.services.conftest import ingest_into, make_settings

pytestmark = [pytest.mark.slow, pytest.mark.integration]

PHOTOS = {"astronaut.jpg": imagefactory.jpeg_bytes("astronaut", (96, 64)),
          "chelsea.png": imagefactory.png_bytes("chelsea", (64, 96)),
          "coffee.jpg": imagefactory.jpeg_bytes("coffee", (80, 80))}


def recorded_paths(home: Path) -> list[str]:
    """Every stored path the catalog holds: originals and index snapshots."""
    with sqlite3.connect(home / "catalog.db") as db:
        rows = db.execute("SELECT stored_path FROM image UNION ALL "
                          "SELECT path FROM index_snapshot").fetchall()
    return [path for (path,) in rows]


def fill_from(directory: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Ingest the photos into a home given relative to `directory`, run from there, with a
    snapshot and a second (empty) space; the home's absolute path."""
    monkeypatch.chdir(directory)
    (directory / "photos").mkdir()
    for name, data in PHOTOS.items():
        (directory / "photos" / name).write_bytes(data)
    settings = Settings(home=Path("home"), decode_workers=1)
    assert settings.home == directory / "home"
    init_catalog(settings)
    with open_runtime(settings) as runtime:
        assert ingest_into(runtime, Path("photos")).added == len(PHOTOS)
        snapshot_all(runtime)
        create_space(runtime, name="mac", definition=SpaceDefinition(pooling="mac"))
    return settings.home


def wait_for_job(client: httpx.Client, job_id: int) -> dict:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["state"] in ("succeeded", "failed", "cancelled"):
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not finish: {job}")


def test_a_moved_home_is_served_whole_from_another_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first, elsewhere = tmp_path / "first", tmp_path / "elsewhere"
    first.mkdir()
    elsewhere.mkdir()
    home = fill_from(first, monkeypatch)
    paths = recorded_paths(home)
    assert paths and not any(p.startswith(("/", "home")) for p in paths), paths

    moved = tmp_path / "volume" / "lookalike"
    moved.parent.mkdir()
    shutil.move(home, moved)
    monkeypatch.chdir(elsewhere)  # the server process starts here too
    settings = make_settings(moved)
    port = free_port()
    process = start_server(settings, port)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            served = client.get("/v1/images", params={"limit": 50}).json()["items"]
            ids = {item["source_uri"].rsplit("/", 1)[-1]: item["id"] for item in served}
            assert sorted(ids) == sorted(PHOTOS)
            for name, image_id in ids.items():
                original = client.get(f"/v1/images/{image_id}/file")
                assert original.status_code == 200, original.text
                assert original.content == PHOTOS[name]
                thumbnail = client.get(f"/v1/images/{image_id}/thumbnail")
                assert thumbnail.status_code == 200, thumbnail.text
                assert thumbnail.content[:2] == b"\xff\xd8"
            found = client.post("/v1/search", params={"k": 3},
                                files={"file": ("q.png", PHOTOS["chelsea.png"])}).json()
            assert found["results"][0]["image_id"] == ids["chelsea.png"]
            explained = client.get("/v1/explain", params={"query": ids["astronaut.jpg"],
                                                          "result": ids["coffee.jpg"]})
            assert explained.status_code == 200, explained.text
            job = client.post("/v1/jobs", json={"kind": "reindex", "space": "mac"}).json()
            done = wait_for_job(client, job["id"])
            assert (done["state"], done["counts"]["added"]) == ("succeeded", len(PHOTOS)), done
    finally:
        process.terminate()
        process.wait(timeout=30)
    with open_runtime(settings) as runtime:
        assert verify_storage(runtime).findings == []
