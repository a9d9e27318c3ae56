"""POST /v1/copies and search with verify=1 over HTTP, on the bundled photos."""

from __future__ import annotations

import io
from collections.abc import Iterator

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from lookalike.retrieval.training.copyedits import apply_edit
from lookalike.services.api.app import create_app
from lookalike.services.catalog import spaces as space_queries
from lookalike.services.catalog.documents import CopyCalibration
from lookalike.services.runtime import Runtime
from lookalike.services.sample import bundled_photos
from lookalike.services.spaces.lookup import find_space

CALIBRATION = CopyCalibration(score_threshold=0.99, inlier_threshold=15, margin_threshold=0.2,
                              margin_rank=5, target_precision=0.99, benchmark="test", pairs=1,
                              precision=1.0, recall=1.0, precision_verified=1.0,
                              recall_verified=1.0)


@pytest.fixture()
def client(photo_home: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(photo_home.settings)) as test_client:
        yield test_client


def calibrate(runtime: Runtime) -> None:
    with runtime.session() as session:
        space = find_space(session=session, name=None)
        options = space.options.model_copy(update={"copy_calibration": CALIBRATION})
        space_queries.set_space_options(session=session, space_id=space.id, options=options)
        session.commit()


def jpeg(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def photo(name: str) -> Image.Image:
    return next(p for p in bundled_photos() if p.name == name).image


def ask(client: TestClient, image: Image.Image):
    return client.post("/v1/copies", files={"file": ("q.jpg", jpeg(image), "image/jpeg")})


@pytest.mark.parametrize("field", ["k", "space"])
def test_a_query_parameter_sent_as_a_form_field_is_told_where_it_goes(
        client: TestClient, field: str) -> None:
    """`curl -F k=3` on a copy question: k, like the space, goes in the URL, and the 422
    says so rather than calling it an unknown field."""
    answer = client.post("/v1/copies", files={"file": ("q.jpg", jpeg(photo("rocket")),
                                                       "image/jpeg")}, data={field: "3"})
    assert answer.status_code == 422, answer.text
    assert f"add ?{field}=... to the URL" in answer.json()["detail"]


def test_a_space_without_thresholds_says_how_to_fit_them(client: TestClient) -> None:
    answer = client.post("/v1/copies", json={"image_id": 1})
    assert answer.status_code == 409 and answer.json()["error"] == "not_calibrated"
    assert "--calibrate" in answer.json()["detail"]


def test_copies_of_an_upload_and_of_a_catalogued_image(client: TestClient,
                                                       photo_home: Runtime) -> None:
    calibrate(photo_home)
    edited = apply_edit(photo("rocket"), "paste_into_frame", 3, strength=0.8)
    found = ask(client, edited).json()
    assert found["is_copy"] and found["answer"].startswith("copy of image ")
    assert found["copies"][0]["source"].endswith("rocket.jpg")
    assert found["copies"][0]["inliers"] >= 15
    assert found["thresholds"] == {"inliers": 15, "margin": 0.2, "margin_rank": 5,
                                   "target_precision": 0.99}
    noise = np.random.default_rng(0).integers(0, 256, size=(200, 300, 3), dtype=np.uint8)
    none = ask(client, Image.fromarray(noise)).json()
    assert (none["is_copy"], none["answer"], none["copies"]) == (False, "no copy", [])
    itself = client.post("/v1/copies", json={"image_id": found["copies"][0]["image_id"]})
    assert itself.status_code == 200 and itself.json()["answer"] == "no copy"


def test_search_verify_returns_inliers_and_is_copy(client: TestClient,
                                                   photo_home: Runtime) -> None:
    calibrate(photo_home)
    edited = apply_edit(photo("coffee"), "heavy_crop", 5, strength=0.9)
    answer = client.post("/v1/search?k=3&verify=1",
                         files={"file": ("q.jpg", jpeg(edited), "image/jpeg")}).json()
    assert answer["verified"]
    first, *rest = answer["results"]
    assert first["source"].endswith("coffee.jpg") and first["is_copy"] and first["inliers"] > 15
    assert all(hit["is_copy"] is False for hit in rest)
