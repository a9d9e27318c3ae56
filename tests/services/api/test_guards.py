"""Browser-facing defences: security headers, the Host allow-list, the same-origin check on
state-changing requests, CORS only for listed origins, and body caps that chunking can't dodge."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from lookalike.services.api.app import create_app
from lookalike.services.api.ranges import valid_byte_ranges
from lookalike.services.runtime import Runtime
from tests import imagefactory

pytestmark = pytest.mark.slow

PARTNER = "https://partner.example"


@pytest.fixture()
def client(photo_home: Runtime) -> Iterator[TestClient]:
    settings = photo_home.settings.model_copy(update={"cors_origins": [PARTNER],
                                                      "max_json_bytes": 4096})
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def test_the_page_and_the_api_carry_security_headers(client: TestClient) -> None:
    for path in ("/", "/v1/spaces", "/static/js/main.js"):
        headers = client.get(path).headers
        assert headers["x-content-type-options"] == "nosniff", path
        assert headers["referrer-policy"] == "no-referrer"
        policy = headers["content-security-policy"]
        assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
        assert "unsafe-inline" not in policy


def test_unknown_host_names_are_refused(client: TestClient) -> None:
    answer = client.get("/v1/spaces", headers={"Host": "rebound.attacker.example"})
    assert answer.status_code == 400 and "LOOKALIKE_ALLOWED_HOSTS" in answer.json()["detail"]
    assert client.get("/v1/spaces", headers={"Host": "localhost:8000"}).status_code == 200


def test_a_foreign_page_cannot_change_anything(client: TestClient) -> None:
    upload = {"file": ("x.png", imagefactory.png_bytes("coffee", size=(40, 30)))}
    foreign = client.post("/v1/images", files=upload, headers={"Origin": "https://evil.example"})
    assert foreign.status_code == 403 and foreign.json()["error"] == "cross_origin"
    deleted = client.delete("/v1/images/1", headers={"Origin": "https://evil.example"})
    assert deleted.status_code == 403
    same = client.post("/v1/images", files=upload, headers={"Origin": "http://testserver"})
    assert same.status_code == 201
    assert client.get("/v1/spaces", headers={"Origin": "https://evil.example"}).status_code == 200


def test_a_sandboxed_frame_cannot_post_an_upload(client: TestClient) -> None:
    """A sandboxed iframe, a file or a data: URL sends `Origin: null`; on an open server a form
    in such a frame on any site could otherwise add images here."""
    upload = {"file": ("x.png", imagefactory.png_bytes("coffee", size=(40, 30)))}
    opaque = client.post("/v1/images", files=upload, headers={"Origin": "null"})
    assert opaque.status_code == 403 and opaque.json()["error"] == "cross_origin"


@pytest.mark.parametrize("name", ["Host", "Origin"])
@pytest.mark.parametrize("order", ["good first", "good last"])
def test_a_request_with_two_hosts_or_origins_is_refused(
        client: TestClient, name: str, order: str) -> None:
    """The checks must not read a different header than a proxy did: the first of two
    allowed Host headers let rebound.attacker.example through, as did the first Origin."""
    good = "testserver" if name == "Host" else "http://testserver"
    evil = "rebound.attacker.example" if name == "Host" else "https://evil.example"
    pair = [(name, good), (name, evil)]
    if order == "good last":
        pair.reverse()
    upload = {"file": ("x.png", imagefactory.png_bytes("coffee", size=(40, 30)))}
    answer = client.post("/v1/images", files=upload, headers=pair)
    assert answer.status_code == 400 and answer.json()["error"] == "ambiguous_header"
    assert f"one {name} header" in answer.json()["detail"]


def test_cors_answers_only_listed_origins(client: TestClient) -> None:
    preflight = {"Origin": PARTNER, "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization,content-type"}
    allowed = client.options("/v1/search", headers=preflight)
    assert allowed.headers["access-control-allow-origin"] == PARTNER
    other = client.options("/v1/search", headers={**preflight, "Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers
    search = client.post("/v1/search?k=1", json={"image_id": 1}, headers={"Origin": PARTNER})
    assert search.status_code == 200


def test_bodies_are_capped_with_or_without_a_declared_length(client: TestClient) -> None:
    big_json = b'{"image_id": 1, "pad": "' + b"x" * 8000 + b'"}'
    declared = client.post("/v1/search", content=big_json,
                           headers={"Content-Type": "application/json"})
    assert declared.status_code == 413 and "LOOKALIKE_MAX_JSON_BYTES" in declared.text

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(big_json), 1000):
            yield big_json[start:start + 1000]

    chunked = client.post("/v1/search", content=chunks(),
                          headers={"Content-Type": "application/json"})
    assert chunked.status_code == 413


def test_files_answer_byte_ranges_and_ignore_ranges_they_cannot_honour(
        client: TestClient) -> None:
    whole = client.get("/v1/images/1/file")
    assert whole.status_code == 200
    size = len(whole.content)
    part = client.get("/v1/images/1/file", headers={"Range": "bytes=2-9"})
    assert part.status_code == 206 and part.content == whole.content[2:10]
    assert part.headers["content-range"] == f"bytes 2-9/{size}"
    for header in ("bytes=5-1", "bytes=abc", "items=0-1", "bytes=", "bytes=-", "0-1"):
        answer = client.get("/v1/images/1/file", headers={"Range": header})
        assert answer.status_code == 200, header
        assert answer.content == whole.content, header
    beyond = client.get("/v1/images/1/file", headers={"Range": f"bytes={size}-"})
    assert beyond.status_code == 416 and beyond.headers["content-range"] == f"bytes */{size}"
    static = client.get("/static/js/main.js", headers={"Range": "bytes=9-3"})
    assert static.status_code == 200 and static.content == client.get("/static/js/main.js").content


def test_only_well_formed_byte_ranges_pass() -> None:
    assert all(valid_byte_ranges(value) for value in (
        "bytes=0-0", "bytes=5-", "bytes=-20", "BYTES = 0-1, 4-9", "bytes=0-1,,2-3"))
    assert not any(valid_byte_ranges(value) for value in (
        "bytes=5-1", "bytes=abc", "bytes=1-2-3", "bytes=-", "bytes=,", "bytes 0-1", "lines=0-1",
        "bytes=0x1-2", "bytes=1.5-2"))
