"""A NUL (0x00) character in any text a request carries is the caller's error on both catalogs:
PostgreSQL's driver refused it mid-request (a 500 for a filter, a caption, a collection or an
upload's file name) and SQLite stored it. Text read from files (EXIF pads its strings with
NULs) is cleaned instead, and an upload's file name keeps the NUL percent-encoded."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from lookalike.services.api.app import create_app
from lookalike.services.setup import init_catalog
from tests import imagefactory
from tests.services.conftest import make_settings

pytestmark = pytest.mark.slow

BOUNDARY = "nulbound"


@pytest.fixture()
def client(tmp_path: Path, database_url: str) -> Iterator[TestClient]:
    """The API on an empty catalog in SQLite or in a fresh PostgreSQL database."""
    settings = make_settings(tmp_path / "home", database_url)
    init_catalog(settings)
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def _multipart(parts: list[tuple[bytes, bytes]]) -> bytes:
    """A multipart body written byte for byte (HTTP clients percent-encode a NUL in a name)."""
    body = b"".join(b"--" + BOUNDARY.encode() + b"\r\n" + head + b"\r\n\r\n" + content + b"\r\n"
                    for head, content in parts)
    return body + b"--" + BOUNDARY.encode() + b"--\r\n"


def _upload(client: TestClient, filename: bytes, data: bytes, *fields: tuple[bytes, bytes],
            query: str = "") -> dict:
    parts = [(b'Content-Disposition: form-data; name="file"; filename="' + filename +
              b'"\r\nContent-Type: image/png', data)]
    parts += [(b'Content-Disposition: form-data; name="' + name + b'"', value)
              for name, value in fields]
    answer = client.post(f"/v1/images{query}", content=_multipart(parts),
                         headers={"content-type": f"multipart/form-data; boundary={BOUNDARY}"})
    return {**answer.json(), "http": answer.status_code}


@pytest.mark.parametrize("field", [b"collection", b"label", b"title", b"caption"])
def test_an_upload_whose_text_holds_a_nul_is_refused_and_nothing_is_stored(
        client: TestClient, field: bytes) -> None:
    answer = _upload(client, b"ok.png", imagefactory.png_bytes("coffee", size=(48, 32)),
                     (field, b"cups\x00of coffee"))
    assert answer["http"] == 422, answer
    assert answer["detail"].startswith(f"{field.decode()} holds a NUL (0x00) character")
    assert client.get("/v1/images").json()["items"] == []


def test_a_nul_in_an_uploads_file_name_is_kept_percent_encoded(client: TestClient) -> None:
    answer = _upload(client, b"cup\x00s.png", imagefactory.png_bytes("coffee", size=(48, 32)))
    assert answer["http"] == 201, answer
    assert answer["source_uri"] == "upload:cup%00s.png"


@pytest.mark.parametrize("query", ["collection=a%00b", "label=%00", "space=a%00b"])
def test_a_search_filter_holding_a_nul_is_a_422(client: TestClient, query: str) -> None:
    _upload(client, b"ok.png", imagefactory.png_bytes("coffee", size=(48, 32)))
    answer = client.post(f"/v1/search?{query}", files={
        "file": ("q.png", imagefactory.png_bytes("coffee", size=(48, 32)))})
    assert answer.status_code == 422, answer.text
    assert "NUL (0x00)" in answer.json()["detail"]
    listed = client.get(f"/v1/images?{query.replace('space', 'collection')}")
    assert listed.status_code == 422 and "NUL (0x00)" in listed.json()["detail"]


def test_a_json_body_holding_a_nul_names_the_field(client: TestClient) -> None:
    image_id = _upload(client, b"ok.png", imagefactory.png_bytes("coffee", size=(48, 32)))["id"]
    answer = client.patch(f"/v1/images/{image_id}", json={"caption": "a\u0000b"})
    assert answer.status_code == 422
    assert "caption" in answer.json()["detail"] and "NUL (0x00)" in answer.json()["detail"]
    assert client.get(f"/v1/images/{image_id}").json()["caption"] is None


@pytest.mark.parametrize("collection", ["a\u0000b", "a\ud800b"])
def test_a_job_asked_for_with_unstorable_text_is_refused_and_not_queued(
        client: TestClient, collection: str) -> None:
    """JSON's "\\ud800" is an unpaired surrogate, which neither driver can encode: the job
    was accepted and queued with it."""
    body = json.dumps({"kind": "ingest", "urls": ["http://example.com/a.png"],
                       "collection": collection})  # ASCII: the surrogate stays escaped
    answer = client.post("/v1/jobs", content=body,
                         headers={"content-type": "application/json"})
    assert answer.status_code == 422, answer.text
    assert "collection" in answer.json()["detail"]
    assert client.get("/v1/jobs").json() == []


def test_an_exif_description_padded_with_nuls_becomes_a_clean_caption(
        client: TestClient) -> None:
    image = imagefactory.photo("coffee", size=(48, 32))
    exif = Image.Exif()
    exif[0x010E] = "a cup of coffee\x00\x00\x00"
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", exif=exif.tobytes())
    answer = _upload(client, b"exif.jpg", buffer.getvalue())
    assert answer["http"] == 201, answer
    assert client.get(f"/v1/images/{answer['id']}").json()["caption"] == "a cup of coffee"
