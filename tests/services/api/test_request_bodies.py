"""What a request body may hold: a misspelt field, a value of the wrong JSON type and a
repeated or unknown multipart field are each a 422 that names them, and nothing runs."""

from __future__ import annotations

from collections.abc import Iterator

import jsonschema_rs
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


@pytest.mark.parametrize(("body", "named"), [
    ({"image_id": True}, "image_id"),  # lax validation searched image 1
    ({"image_id": "1"}, "image_id"),
    ({"image_id": 1.0}, "image_id"),
    ({"image_id": 1, "qe": True}, "qe"),  # an option that belongs in the query string
    ({"txt": "coffee"}, "txt"),
])
def test_a_json_search_refuses_what_it_does_not_read_exactly(
        client: TestClient, body: dict, named: str) -> None:
    answer = client.post("/v1/search", json=body)
    assert answer.status_code == 422, answer.text
    assert named in answer.json()["detail"]


def test_the_web_pages_json_search_is_still_answered(client: TestClient) -> None:
    answer = client.post("/v1/search?k=2", json={"image_id": 1, "text": None})
    assert answer.status_code == 200, answer.text
    assert answer.json()["results"][0]["image_id"] == 1


@pytest.mark.parametrize(("body", "named"), [
    ({"kind": "detect", "detector": "faces", "colection": "holiday"}, "colection"),
    ({"kind": "ingest", "paths": [], "label_from_dir": "yes"}, "label_from_dir"),
    ({"kind": "top-patches", "layer": "3", "channel": 0}, "layer"),
    ({"kind": "duplicates", "threshold": "0.9"}, "threshold"),
])
def test_a_job_with_a_misspelt_or_mistyped_field_is_refused_and_not_queued(
        client: TestClient, body: dict, named: str) -> None:
    before = client.get("/v1/jobs").json()
    answer = client.post("/v1/jobs", json=body)
    assert answer.status_code == 422, answer.text
    assert named in answer.json()["detail"]
    assert client.get("/v1/jobs").json() == before


@pytest.mark.parametrize(("files", "says"), [
    ([("file", ("a.png", b"a")), ("file", ("b.png", b"b"))], "one 'file' field"),
    ([("image", ("a.png", b"a"))], "'image'"),
    ([("file", ("a.png", b"a")), ("text", (None, "x")), ("text", (None, "y"))],
     "one 'text' field"),
])
def test_a_multipart_search_takes_each_field_once_and_no_other(
        client: TestClient, files: list, says: str) -> None:
    real = imagefactory.png_bytes("coffee", size=(64, 64))
    files = [(name, (part[0], real if part[0] else part[1])) for name, part in files]
    answer = client.post("/v1/search", files=files)
    assert answer.status_code == 422, answer.text
    assert says in answer.json()["detail"]
    copies = client.post("/v1/copies", files=[("file", ("a.png", real)),
                                              ("file", ("b.png", real))])
    assert copies.status_code == 422 and "one 'file' field" in copies.json()["detail"]


@pytest.mark.parametrize(("path", "fields"), [
    ("/v1/search", ("file",)), ("/v1/search", ("text",)), ("/v1/search", ("file", "text")),
    ("/v1/search", ()), ("/v1/search", ("image",)), ("/v1/search", ("file", "k")),
    ("/v1/copies", ("file",)), ("/v1/copies", ()), ("/v1/copies", ("file", "text")),
])
def test_the_openapi_document_says_which_multipart_fields_a_route_takes(
        client: TestClient, path: str, fields: tuple[str, ...]) -> None:
    """A client generated from /openapi.json (or the API fuzzer) sends a multipart body the
    route takes (its answer is not a 422: /v1/copies says 409 without a calibration) exactly
    when the document's schema says it is valid."""
    operation = client.get("/openapi.json").json()["paths"][path]["post"]
    schema = operation["requestBody"]["content"]["multipart/form-data"]["schema"]
    documented_valid = jsonschema_rs.Draft202012Validator(schema).is_valid(
        dict.fromkeys(fields, "x"))
    real = imagefactory.png_bytes("coffee", size=(64, 64))
    parts = [(name, ("q.png", real) if name == "file" else (None, "coffee")) for name in fields]
    if parts:
        answer = client.post(path, files=parts)
    else:
        answer = client.post(path, content=b"--b--\r\n",
                             headers={"content-type": "multipart/form-data; boundary=b"})
    assert answer.status_code < 500, answer.text
    assert (answer.status_code != 422) == documented_valid, (answer.status_code, answer.text)
