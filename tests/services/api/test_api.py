"""The HTTP API in-process: every route, through FastAPI's test client on a real catalog."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from lookalike.services.api.app import create_app
from lookalike.services.runtime import Runtime
from tests import imagefactory

pytestmark = pytest.mark.slow


@pytest.fixture()
def client(photo_home: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(photo_home.settings)) as test_client:
        yield test_client


def upload(client: TestClient, data: bytes, name: str = "x.jpg", **form: str):
    return client.post("/v1/images", files={"file": (name, data)}, data=form)


def test_search_by_upload_and_by_id(client: TestClient, photo_dir: Path) -> None:
    query = sorted(photo_dir.glob("*.jpg"))[1]
    by_file = client.post("/v1/search?k=4", files={"file": ("q.jpg", query.read_bytes())})
    assert by_file.status_code == 200
    body = by_file.json()
    assert body["space"] == "mobilenet_v2-gap" and body["took_ms"] > 0
    top = body["results"][0]
    assert top["source"] == str(query.resolve()) and len(body["results"]) == 4
    by_id = client.post("/v1/search?k=4", json={"image_id": top["image_id"]}).json()
    assert by_id["results"][0]["image_id"] == top["image_id"]
    assert [r["image_id"] for r in by_id["results"]] == [r["image_id"] for r in body["results"]]


def test_upload_is_searchable_then_duplicate_then_deleted(client: TestClient) -> None:
    data = imagefactory.exif_rotated_jpeg()
    created = upload(client, data, collection="mine", label="rotated")
    assert created.status_code == 201, created.text
    image = created.json()
    assert image["duplicate"] is False and image["label"] == "rotated"
    assert image["height"] > image["width"]
    hits = client.post("/v1/search?k=1", files={"file": ("q.jpg", data)}).json()["results"]
    assert hits[0]["image_id"] == image["id"]

    again = upload(client, data)
    assert again.status_code == 200
    assert again.json()["duplicate"] is True and again.json()["id"] == image["id"]

    thumb = client.get(image["thumbnail_url"])
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    original = client.get(image["file_url"])
    assert original.content == data
    assert client.get(f"/v1/images/{image['id']}").json()["sha256"] == image["sha256"]

    assert client.delete(f"/v1/images/{image['id']}").status_code == 204
    hits = client.post("/v1/search?k=50", files={"file": ("q.jpg", data)}).json()["results"]
    assert image["id"] not in [h["image_id"] for h in hits]
    assert client.get(f"/v1/images/{image['id']}").status_code == 404
    assert client.delete(f"/v1/images/{image['id']}").status_code == 404


@pytest.mark.parametrize(("make", "status", "error"), imagefactory.BAD_UPLOADS)
def test_bad_uploads_are_refused_and_leave_no_row(client: TestClient, make, status: int,
                                                  error: str) -> None:
    before = client.get("/v1/spaces").json()[0]["vector_count"]
    answer = upload(client, make())
    assert answer.status_code == status
    assert answer.json()["error"] == error and answer.json()["detail"]
    assert client.get("/v1/spaces").json()[0]["vector_count"] == before
    search = client.post("/v1/search", files={"file": ("q", make())})
    assert search.status_code == status


@pytest.mark.parametrize("make", [imagefactory.cmyk_jpeg, imagefactory.png16_gray,
                                  imagefactory.palette_png, imagefactory.rgba_png,
                                  imagefactory.animated_gif])
def test_unusual_but_valid_images_are_accepted(client: TestClient, make) -> None:
    answer = upload(client, make())
    assert answer.status_code == 201, answer.text
    assert answer.json()["status"] == "embedded"


def test_a_phones_heic_photo_is_kept_as_heic_and_its_avif_copy_finds_it(
        client: TestClient) -> None:
    data = imagefactory.heic_bytes()
    created = upload(client, data, name="IMG_0001.HEIC")
    assert created.status_code == 201, created.text
    image = created.json()
    original = client.get(image["file_url"])
    assert original.headers["content-type"] == "image/heic" and original.content == data
    query = {"file": ("q.avif", imagefactory.avif_bytes())}
    hits = client.post("/v1/search?k=1", files=query).json()["results"]
    assert hits[0]["image_id"] == image["id"] and hits[0]["score"] > 0.9


def test_spaces_health_and_errors(client: TestClient) -> None:
    spaces = client.get("/v1/spaces").json()
    assert spaces[0]["is_default"] and spaces[0]["dim"] == 1280
    assert spaces[0]["vector_count"] > 10
    assert client.get("/healthz").json()["status"] == "ok"
    assert client.post("/v1/search", json={"image_id": 10**9}).status_code == 404
    assert client.post("/v1/search?space=nope", json={"image_id": 1}).status_code == 404
    assert client.post("/v1/search?k=0", json={"image_id": 1}).status_code == 422
    assert "/v1/search" in client.get("/openapi.json").json()["paths"]


def test_openapi_describes_what_the_job_routes_answer(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    answer = document["paths"]["/v1/jobs/{job_id}"]["get"]["responses"]["200"]
    assert answer["content"]["application/json"]["schema"]["$ref"].endswith("/JobPublic")
    job = document["components"]["schemas"]["JobPublic"]
    assert {"state", "progress", "counts", "errors"} <= set(job["properties"])


def test_an_overlong_label_or_collection_is_a_422_and_stores_nothing(
        client: TestClient, photo_home: Runtime) -> None:
    originals = photo_home.settings.layout.originals
    before = sorted(originals.rglob("*"))
    data = imagefactory.jpeg_bytes("coffee", (64, 48))
    for form in ({"label": "x" * 201}, {"collection": "y" * 201}):
        answer = upload(client, data, **form)
        assert answer.status_code == 422, answer.text
        assert answer.json()["error"] == "invalid_request" and "200" in answer.json()["detail"]
    assert sorted(originals.rglob("*")) == before
    assert upload(client, data, label="x" * 200, collection="y" * 200).status_code == 201
