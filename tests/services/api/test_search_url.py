"""POST /v1/search with {"url": ...}: the image is fetched under the URL fetch rules, so a
loopback server is refused until the allow-list names it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from lookalike.services.api.app import create_app
from lookalike.services.runtime import Runtime
from tests.localhttp import Server, serving_directory

pytestmark = pytest.mark.slow


@pytest.fixture()
def photo_server(photo_dir: Path) -> Iterator[Server]:
    with serving_directory(photo_dir) as server:
        yield server


def client_for(runtime: Runtime, *allow: str) -> TestClient:
    settings = runtime.settings.model_copy(update={"fetch_allow": list(allow)})
    return TestClient(create_app(settings))


def test_search_by_url_finds_the_served_photo(photo_home: Runtime, photo_dir: Path,
                                              photo_server: Server) -> None:
    query = sorted(photo_dir.glob("*.jpg"))[1]
    with client_for(photo_home, "127.0.0.1/32") as client:
        answer = client.post("/v1/search?k=3", json={"url": f"{photo_server.root}/{query.name}"})
        assert answer.status_code == 200, answer.text
        assert answer.json()["results"][0]["source"] == str(query.resolve())
        missing = client.post("/v1/search", json={"url": f"{photo_server.root}/absent.jpg"})
        assert missing.status_code == 502 and missing.json()["error"] == "fetch_failed"
        assert "HTTP 404" in missing.json()["detail"] and "<" not in missing.json()["detail"]
        both = client.post("/v1/search", json={"url": photo_server.root, "image_id": 1})
        assert both.status_code == 422 and "JSON search body must be" in both.json()["detail"]


def test_search_by_url_refuses_loopback_by_default(photo_home: Runtime, photo_dir: Path,
                                                   photo_server: Server) -> None:
    query = sorted(photo_dir.glob("*.jpg"))[0]
    with client_for(photo_home) as client:
        answer = client.post("/v1/search", json={"url": f"{photo_server.root}/{query.name}"})
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"] == "fetch_refused"
    assert "address 127.0.0.1 is a loopback address; LOOKALIKE_FETCH_ALLOW can allow it" \
        in answer.json()["detail"]
    assert photo_server.paths == []
