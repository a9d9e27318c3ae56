"""Regions over HTTP: POST /v1/detect, GET /v1/images/{id}/regions, and POST /v1/search with
box= (a region of the query), including every kind of bad box (422 saying what is wrong)."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator

import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image

from lookalike.retrieval.detection.networks import DetectorConfig
from lookalike.services.api.app import create_app
from lookalike.services.catalog.regions import add_regions
from lookalike.services.catalog.schemas import RegionCreate
from lookalike.services.detection.store import new_network, save_detector
from lookalike.services.runtime import Runtime
from tests import imagefactory

pytestmark = pytest.mark.slow


@pytest.fixture()
def client(photo_home: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(photo_home.settings)) as test_client:
        yield test_client


def _side_by_side(left: str, right: str) -> bytes:
    """One PNG holding two bundled photos, each 160x160, left and right."""
    canvas = Image.new("RGB", (320, 160))
    canvas.paste(imagefactory.photo(left, (160, 160)), (0, 0))
    canvas.paste(imagefactory.photo(right, (160, 160)), (160, 0))
    buffer = io.BytesIO()
    canvas.save(buffer, format="PNG")
    return buffer.getvalue()


def test_detect_answers_boxes_in_the_uploads_pixels(
        client: TestClient, photo_home: Runtime) -> None:
    torch.manual_seed(0)
    config = DetectorConfig("fcos", ("bag", "shoe"), 96)
    save_detector(photo_home.settings.layout, "plain", new_network(config).eval(), config)
    upload = {"file": ("q.png", imagefactory.png_bytes("coffee", size=(200, 120)))}
    answer = client.post("/v1/detect?detector=plain&threshold=0", files=upload)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["detector"], body["width"], body["height"]) == ("plain", 200, 120)
    assert body["boxes"], "an untrained detector still answers low-scored boxes at threshold 0"
    for found in body["boxes"]:
        x0, y0, x1, y1 = found["box"]
        assert 0 <= x0 < x1 <= 200 and 0 <= y0 < y1 <= 120
        assert found["label"] in ("bag", "shoe") and 0 <= found["score"] <= 1
    scores = [found["score"] for found in body["boxes"]]
    assert scores == sorted(scores, reverse=True)
    unnamed = client.post("/v1/detect", files=upload)
    assert unnamed.status_code == 422 and "LOOKALIKE_DETECTOR" in unnamed.json()["detail"]
    missing = client.post("/v1/detect?detector=nope", files=upload)
    assert missing.status_code == 404 and "plain" in missing.json()["detail"]
    assert "$LOOKALIKE_HOME/detectors" in missing.json()["detail"]  # not the server's path
    assert str(photo_home.settings.layout.home) not in missing.json()["detail"]


def test_the_pretrained_faces_detector_over_http(client: TestClient) -> None:
    upload = {"file": ("q.png", imagefactory.png_bytes("astronaut"))}
    body = client.post("/v1/detect?detector=faces", files=upload).json()
    assert body["width"] == 512 and [b["label"] for b in body["boxes"]] == ["face"]
    x0, y0, x1, y1 = body["boxes"][0]["box"]
    assert x0 < 222 < x1 and y0 < 110 < y1


def test_regions_of_an_image_best_first(client: TestClient, photo_home: Runtime) -> None:
    assert client.get("/v1/images/1/regions").json()["regions"] == []
    with photo_home.session() as session:
        add_regions(session=session, image_id=1, regions=[
            RegionCreate(x0=1, y0=2, x1=30, y1=40, detector="user"),
            RegionCreate(x0=5, y0=5, x1=50, y1=60, label="cup", score=0.8, detector="fcos")])
        session.commit()
    body = client.get("/v1/images/1/regions").json()
    assert [r["box"] for r in body["regions"]] == [[5, 5, 50, 60], [1, 2, 30, 40]]
    assert [r["detector"] for r in body["regions"]] == ["fcos", "user"]
    assert body["width"] > 0 and body["height"] > 0
    only = client.get("/v1/images/1/regions?detector=user").json()["regions"]
    assert [r["label"] for r in only] == [None]
    assert client.get("/v1/images/99999/regions").status_code == 404


def test_search_with_a_box_finds_what_is_inside_it(client: TestClient) -> None:
    both = _side_by_side("chelsea", "coffee")
    for box, name in (("0,0,160,160", "chelsea"), ("160,0,320,160", "coffee")):
        answer = client.post(f"/v1/search?k=1&box={box}", files={"file": ("q.png", both)})
        assert answer.status_code == 200, answer.text
        assert answer.json()["results"][0]["source"].endswith(f"{name}.jpg")


def test_search_with_a_box_on_a_catalogued_image(client: TestClient) -> None:
    whole = client.post("/v1/search?k=1", json={"image_id": 1}).json()["results"][0]
    cut = client.post("/v1/search?k=3&box=0,0,40,40", json={"image_id": 1})
    assert cut.status_code == 200 and whole["image_id"] == 1
    assert len(cut.json()["results"]) == 3


@pytest.mark.parametrize(("box", "message"), [
    ("0,0,400,100", "outside the image"),
    ("10,10,10,50", "empty or inverted"),
    ("50,10,20,40", "empty or inverted"),
    ("a,b,c,d", "not numeric"),
    ("1,2,3", "four numbers"),
    ("0,0,nan,5", "not a finite number"),
])
def test_bad_boxes_get_422_saying_what_is_wrong(
        client: TestClient, box: str, message: str) -> None:
    upload = {"file": ("q.png", _side_by_side("chelsea", "coffee"))}
    answer = client.post(f"/v1/search?k=1&box={box}", files=upload)
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"] == "invalid_box" and message in answer.json()["detail"]


def test_a_box_needs_a_query_image(client: TestClient) -> None:
    answer = client.post("/v1/search?box=0,0,5,5", json={"text": "coffee"})
    assert answer.status_code == 422 and "query image" in answer.json()["detail"]


@pytest.mark.parametrize("field", ["box", "scope", "k"])
def test_a_query_parameter_sent_as_a_form_field_is_told_where_it_goes(
        client: TestClient, field: str) -> None:
    """`curl -F box=...` works on POST /v1/images, where a box is a form field; a search reads
    its box (and every other option) from the URL, and says so."""
    upload = {"file": ("q.png", _side_by_side("chelsea", "coffee"))}
    answer = client.post("/v1/search", files=upload, data={field: "0,0,160,160"})
    assert answer.status_code == 422, answer.text
    assert f"add ?{field}=... to the URL" in answer.json()["detail"]


def test_a_detect_job_over_http_stores_regions(client: TestClient) -> None:
    created = client.post("/v1/jobs", json={"kind": "detect", "detector": "faces"})
    assert created.status_code == 202, created.text
    job_id = created.json()["id"]
    for _ in range(600):
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["state"] in ("succeeded", "failed"):
            break
        time.sleep(0.5)
    assert job["state"] == "succeeded" and job["counts"]["added"] == 3
    unknown = client.post("/v1/jobs", json={"kind": "detect", "detector": "nope"})
    assert unknown.status_code == 404
