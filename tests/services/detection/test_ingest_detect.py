"""Detection at ingest beyond `lookalike ingest --detect`: `detect` on ingest jobs submitted
over HTTP (run where jobs run, counted in the job), and a default detector per collection
(LOOKALIKE_DETECT_DEFAULTS) that uploads and ingest jobs apply when they name none."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from lookalike.services.api.app import create_app
from lookalike.services.config import Settings
from lookalike.services.setup import init_catalog, open_runtime
from lookalike.services.spaces.lookup import ensure_default_space
from tests.services.conftest import make_settings, write_photos

pytestmark = pytest.mark.slow

PORTRAITS = ("astronaut", "grace_hopper")


@pytest.fixture()
def photos(tmp_path: Path) -> Path:
    """Two portraits and a cup of coffee: faces finds one face on each portrait."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for path in write_photos(tmp_path / "all"):
        if path.stem in (*PORTRAITS, "coffee"):
            path.rename(folder / path.name)
    return folder


@pytest.fixture()
def client(tmp_path: Path, photos: Path) -> Iterator[TestClient]:
    settings = make_settings(tmp_path / "home", ingest_roots=[photos],
                             detect_defaults={"people": "faces", "broken": "nosuch"})
    init_catalog(settings)
    with open_runtime(settings) as runtime, runtime.session() as session:
        # made first: making it runs the engine check inside the catalog's write lock
        ensure_default_space(session=session, settings=settings)
        session.commit()
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def _wait_done(client: TestClient, job_id: int) -> dict:
    """The job once it has finished (it runs in the server's background thread)."""
    for _ in range(1200):
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["state"] not in ("queued", "running"):
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} still running: {job}")


def _regions(home: Path) -> list[tuple[str, str, str | None]]:
    """(file stem, detector, collection) of every stored region."""
    with sqlite3.connect(home / "catalog.db") as db:
        rows = db.execute("SELECT i.source_uri, r.detector, i.collection FROM region r "
                          "JOIN image i ON i.id = r.image_id ORDER BY i.source_uri").fetchall()
    return [(Path(source).stem, detector, collection) for source, detector, collection in rows]


def test_an_http_ingest_job_runs_its_detector_on_the_images_it_stores(
        client: TestClient, photos: Path, tmp_path: Path) -> None:
    refused = client.post("/v1/jobs", json={"kind": "ingest", "paths": [str(photos)],
                                            "detect": "nosuch"})
    assert refused.status_code == 404 and "nosuch" in refused.json()["detail"]
    assert client.get("/v1/images").json()["items"] == []
    submitted = client.post("/v1/jobs", json={"kind": "ingest", "paths": [str(photos)],
                                              "detect": "faces"})
    assert submitted.status_code == 202, submitted.text
    job = _wait_done(client, submitted.json()["id"])
    assert job["state"] == "succeeded", job
    assert (job["counts"]["added"], job["counts"]["regions"]) == (3, 2)
    assert _regions(tmp_path / "home") == [(p, "faces", None) for p in PORTRAITS]
    query = (photos / "astronaut.jpg").read_bytes()
    found = client.post("/v1/search?scope=regions&k=1&box=160,30,290,200",
                        files={"file": ("q.jpg", query)})
    assert found.status_code == 200, found.text
    assert found.json()["results"][0]["region"]["detector"] == "faces"


def test_a_collections_default_detector_runs_when_an_ingest_names_none(
        client: TestClient, photos: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    portrait = (photos / "astronaut.jpg").read_bytes()
    plain = client.post("/v1/images", files={"file": ("a.jpg", portrait)},
                        data={"collection": "misc"})
    assert plain.status_code == 201 and plain.json()["detected"] is None
    assert _regions(home) == []
    broken = client.post("/v1/images", files={"file": ("g.jpg", portrait)},
                         data={"collection": "broken"})
    assert broken.status_code == 404 and "nosuch" in broken.json()["detail"]
    job = _wait_done(client, client.post("/v1/jobs", json={
        "kind": "ingest", "paths": [str(photos / "grace_hopper.jpg")],
        "collection": "people"}).json()["id"])
    assert job["state"] == "succeeded" and job["counts"]["regions"] == 1, job
    assert _regions(home) == [("grace_hopper", "faces", "people")]
    uploaded = client.post("/v1/images", files={"file": ("c.jpg", (photos / "coffee.jpg")
                                                         .read_bytes())},
                           data={"collection": "people"})
    assert uploaded.status_code == 201 and uploaded.json()["detected"] == 0


def test_detect_defaults_read_from_the_environment(monkeypatch: pytest.MonkeyPatch,
                                                   tmp_path: Path) -> None:
    monkeypatch.setenv("LOOKALIKE_DETECT_DEFAULTS", "people=faces, shop = products ,")
    assert Settings(home=tmp_path).detect_defaults == {"people": "faces", "shop": "products"}
    monkeypatch.setenv("LOOKALIKE_DETECT_DEFAULTS", "people")
    with pytest.raises(ValidationError, match="'people' is not collection=detector"):
        Settings(home=tmp_path)
