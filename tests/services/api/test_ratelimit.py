"""Rate limits: per key or address, search by upload on its own budget, 429 with Retry-After,
and counts shared through Redis by two real API processes."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest
from fastapi.testclient import TestClient

from lookalike.services.api import ratelimit
from lookalike.services.api.app import create_app
from lookalike.services.auth.keys import create_api_key
from lookalike.services.bench.search import free_port, start_server
from lookalike.services.runtime import Runtime
from tests import imagefactory

pytestmark = pytest.mark.slow

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture()
def tight(photo_home: Runtime) -> Iterator[TestClient]:
    settings = photo_home.settings.model_copy(update={
        "rate_search": "3/minute", "rate_search_upload": "1/minute",
        "rate_namespace": f"test-{uuid.uuid4().hex}"})
    with TestClient(create_app(settings)) as client:
        yield client


def test_a_spent_budget_answers_429_with_retry_after(tight: TestClient) -> None:
    answers = [tight.post("/v1/search?k=1", json={"image_id": 1}) for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert answers[-1].json()["error"] == "rate_limited"
    assert 1 <= int(answers[-1].headers["retry-after"]) <= 60


def test_uploads_have_their_own_budget(tight: TestClient) -> None:
    query = {"file": ("q.png", imagefactory.png_bytes("coffee", size=(64, 48)))}
    assert tight.post("/v1/search?k=1", files=query).status_code == 200
    assert tight.post("/v1/search?k=1", files=query).status_code == 429
    assert tight.post("/v1/search?k=1", json={"image_id": 1}).status_code == 200


def test_each_key_has_its_own_budget(tight: TestClient, photo_home: Runtime) -> None:
    keys = [create_api_key(photo_home, name=f"user-{i}", scopes="search")[1] for i in range(2)]
    for key in keys:
        statuses = [tight.post("/v1/search?k=1", json={"image_id": 1},
                               headers={"Authorization": f"Bearer {key}"}).status_code
                    for _ in range(4)]
        assert statuses == [200, 200, 200, 429]


@pytest.mark.integration
def test_two_processes_share_their_counts_through_redis(photo_home: Runtime) -> None:
    env = {"LOOKALIKE_BROKER_URL": REDIS_URL, "LOOKALIKE_RATE_SEARCH": "4/minute",
           "LOOKALIKE_RATE_NAMESPACE": f"test-{uuid.uuid4().hex}"}
    ports = [free_port(), free_port()]
    servers = [start_server(photo_home.settings, port, extra_env=env) for port in ports]
    try:
        statuses = [httpx.post(f"http://127.0.0.1:{port}/v1/search?k=1", json={"image_id": 1},
                               timeout=60).status_code
                    for port in (*ports, *ports, ports[0])]
    finally:
        for server in servers:
            server.terminate()
            server.wait(timeout=30)
    assert statuses == [200, 200, 200, 200, 429]


def test_searches_go_on_unmetered_while_the_counter_store_is_down(
        photo_home: Runtime, capsys: pytest.CaptureFixture[str]) -> None:
    settings = photo_home.settings.model_copy(update={
        "broker_url": "redis://127.0.0.1:1/0", "rate_search": "1/minute"})
    with TestClient(create_app(settings)) as client:
        statuses = [client.post("/v1/search?k=1", json={"image_id": 1}).status_code
                    for _ in range(3)]
    assert statuses == [200, 200, 200]
    assert "rate limits not enforced" in capsys.readouterr().out  # the API logs to stdout


def test_searches_by_id_go_on_while_every_upload_slot_is_taken(
        photo_home: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    """Upload slots bound how many uploads are decoded at once: a search by id decodes
    nothing, so it neither waits for a slot nor is refused when none is free."""
    monkeypatch.setattr(ratelimit, "UPLOAD_WAIT_S", 0.5)
    settings = photo_home.settings.model_copy(update={"max_concurrent_uploads": 2})
    query = {"file": ("q.png", imagefactory.png_bytes("coffee", size=(64, 48)))}
    with TestClient(create_app(settings)) as client:
        slots = client.app.state.budgets.uploads  # type: ignore[attr-defined]
        for _ in range(2):
            client.portal.call(slots.acquire)  # type: ignore[union-attr]
        by_id = client.post("/v1/search?k=1", json={"image_id": 1})
        by_upload = client.post("/v1/search?k=1", files=query)
        client.portal.call(slots.release)  # type: ignore[union-attr]
        after = client.post("/v1/search?k=1", files=query)
    assert by_id.status_code == 200
    assert by_upload.status_code == 503
    assert by_upload.json()["error"] == "busy"
    assert after.status_code == 200
