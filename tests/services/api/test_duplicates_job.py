"""Over HTTP: a duplicates job, its clusters as JSON and CSV, keeping one image of a cluster;
and the matched keypoint pairs of the "why it matched" view (/v1/explain?keypoints=true)."""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image, ImageOps

from lookalike.services.api.app import create_app
from lookalike.services.runtime import Runtime
from lookalike.services.sample import bundled_photos
from tests.services.conftest import ingest_into
from tests.services.index.test_duplicates import add_copies

pytestmark = pytest.mark.slow


@pytest.fixture()
def client(photo_home: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(photo_home.settings)) as test_client:
        yield test_client


def _wait_done(client: TestClient, job_id: int) -> dict:
    """The job once it has finished (it runs in the server's background thread)."""
    for _ in range(600):
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["state"] not in ("queued", "running"):
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} still running: {job}")


def _ids_by_name(client: TestClient) -> dict[str, int]:
    items = client.get("/v1/images", params={"limit": 200}).json()["items"]
    return {Path(item["source_uri"]).name: item["id"] for item in items}


def test_a_duplicates_job_lists_exports_and_resolves_clusters(
        client: TestClient, photo_home: Runtime, tmp_path: Path) -> None:
    add_copies(photo_home, tmp_path / "copies")
    ids = _ids_by_name(client)
    refused = client.post("/v1/jobs", json={"kind": "duplicates"})
    assert refused.status_code == 422 and "calibrated copy threshold" in refused.text
    submitted = client.post("/v1/jobs", json={"kind": "duplicates", "threshold": 0.9})
    assert submitted.status_code == 202, submitted.text
    job = _wait_done(client, submitted.json()["id"])
    assert (job["kind"], job["state"]) == ("duplicates", "succeeded"), job
    summary = job["clusters"]
    assert (summary["threshold"], summary["threshold_from"], summary["images"]) == (
        0.9, "given", 26)

    report = client.get(f"/v1/jobs/{job['id']}/duplicates").json()
    assert len(report["clusters"]) == summary["clusters"] >= 2
    astronaut = next(c for c in report["clusters"] if ids["astronaut.jpg"] in c["ids"])
    assert sorted(astronaut["ids"]) == sorted(ids[n] for n in ("astronaut.jpg", "a1.png",
                                                                "a2.png"))
    number = report["clusters"].index(astronaut) + 1

    exported = client.get(f"/v1/jobs/{job['id']}/duplicates", params={"format": "csv"})
    assert exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert len(rows) == sum(len(c["ids"]) for c in report["clusters"])
    assert sum(int(row["keep"]) for row in rows) == len(report["clusters"])

    kept = ids["a2.png"]  # not the lowest id: a person may keep any of them
    outsider = client.post(f"/v1/jobs/{job['id']}/duplicates/{number}/keep",
                           json={"image_id": ids["coffee.jpg"]})
    assert outsider.status_code == 422 and "not in cluster" in outsider.text
    assert client.post(f"/v1/jobs/{job['id']}/duplicates/99/keep",
                       json={"image_id": kept}).status_code == 404
    answer = client.post(f"/v1/jobs/{job['id']}/duplicates/{number}/keep",
                         json={"image_id": kept})
    assert answer.status_code == 200, answer.text
    resolved = answer.json()["resolved"]
    assert resolved["kept"] == kept
    assert sorted(resolved["deleted"]) == sorted(ids[n] for n in ("astronaut.jpg", "a1.png"))
    for gone in resolved["deleted"]:
        assert client.get(f"/v1/images/{gone}").status_code == 404
    assert client.get(f"/v1/images/{kept}").status_code == 200
    again = client.get(f"/v1/jobs/{job['id']}/duplicates").json()
    assert again["clusters"][number - 1]["resolved"] == resolved
    rows = list(csv.DictReader(io.StringIO(client.get(
        f"/v1/jobs/{job['id']}/duplicates", params={"format": "csv"}).text)))
    assert [int(r["image_id"]) for r in rows if r["cluster"] == str(number)
            and r["keep"] == "1"] == [kept]

    assert client.get(f"/v1/jobs/{job['id'] + 99}/duplicates").status_code == 404


def test_explain_answers_the_matched_keypoints_in_original_pixels(
        client: TestClient, photo_home: Runtime, tmp_path: Path) -> None:
    folder = tmp_path / "mirrored"
    folder.mkdir()
    astronaut = next(p.image for p in bundled_photos() if p.name == "astronaut")
    ImageOps.mirror(astronaut).save(folder / "astronaut-mirrored.png")
    assert ingest_into(photo_home, folder).failed == 0
    ids = _ids_by_name(client)
    plain = client.get("/v1/explain", params={"query": ids["astronaut.jpg"],
                                               "result": ids["astronaut-mirrored.png"]})
    assert plain.status_code == 200 and "keypoints" not in plain.json()
    answer = client.get("/v1/explain", params={"query": ids["astronaut.jpg"],
                                                "result": ids["astronaut-mirrored.png"],
                                                "keypoints": "true"})
    assert answer.status_code == 200, answer.text
    keypoints = answer.json()["keypoints"]
    assert keypoints["mirrored"] and keypoints["inliers"] >= 50
    assert keypoints["query_size"] == keypoints["result_size"] == [512, 512]
    assert len(keypoints["pairs"]) == 50
    # a mirror maps x to width - 1 - x: every drawn pair, mapped back, lands on its partner
    for qx, qy, rx, ry in keypoints["pairs"]:
        assert abs((511 - qx) - rx) <= 8 and abs(qy - ry) <= 8

    other = next(p.image for p in bundled_photos() if p.name == "coffee")
    upload = io.BytesIO()
    other.save(upload, format="PNG")
    unrelated = client.post("/v1/explain", params={"result": ids["astronaut.jpg"],
                                                   "keypoints": "true"},
                            files={"file": ("coffee.png", upload.getvalue())})
    assert unrelated.status_code == 200, unrelated.text
    found = unrelated.json()["keypoints"]
    assert found["inliers"] < 10 and found["query_size"] == list(Image.open(
        io.BytesIO(upload.getvalue())).size)
