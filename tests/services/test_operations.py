"""The page's API and the operator's view, in-process on a real catalog of real photos:
browsing, explanations, /metrics, /readyz, request ids and JSON logs."""

from __future__ import annotations

import base64
import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image, ImageOps
from starlette.types import Receive, Scope, Send

from lookalike.services.api.app import create_app
from lookalike.services.api.metrics import Metrics
from lookalike.services.api.requests import RequestContext
from lookalike.services.config import Settings
from lookalike.services.index.readiness import check_readiness
from lookalike.services.runtime import Runtime
from lookalike.services.setup import init_catalog, open_runtime
from tests.services.conftest import ingest_into, make_settings

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory, photo_dir: Path) -> Settings:
    settings = make_settings(tmp_path_factory.mktemp("ops") / "home", log_format="json")
    init_catalog(settings)
    runtime = open_runtime(settings)
    ingest_into(runtime, photo_dir)
    runtime.close()
    return settings


@pytest.fixture(scope="module")
def client(catalog: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(catalog)) as test_client:
        yield test_client


def ids_by_name(client: TestClient) -> dict[str, int]:
    items = client.get("/v1/images", params={"limit": 200}).json()["items"]
    return {Path(item["source_uri"]).stem: item["id"] for item in items}


def test_images_are_listed_page_by_page(client: TestClient) -> None:
    first = client.get("/v1/images", params={"limit": 10}).json()
    second = client.get("/v1/images", params={"limit": 10, "offset": 10}).json()
    everything = client.get("/v1/images", params={"limit": 200}).json()
    assert first["next_offset"] == 10 and everything["next_offset"] is None
    ids = [item["id"] for item in first["items"] + second["items"]]
    assert ids == [item["id"] for item in everything["items"]][:20] == sorted(ids)
    assert everything["items"][0]["thumbnail_url"].endswith("/thumbnail")
    assert client.get("/v1/images", params={"label": "nothing-has-this"}).json()["items"] == []
    refused = client.get("/v1/images", params={"status": "bogus"})
    assert refused.status_code == 422 and "allowed: pending" in refused.json()["detail"]


def test_explanation_adds_up_to_the_search_score(client: TestClient) -> None:
    ids = ids_by_name(client)
    query, result = ids["motorcycle_left"], ids["motorcycle_right"]
    hits = client.post("/v1/search", params={"k": 5}, json={"image_id": query}).json()["results"]
    searched = next(hit["score"] for hit in hits if hit["image_id"] == result)
    answer = client.get("/v1/explain", params={"query": query, "result": result})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["exact"] and body["score"] == pytest.approx(searched, abs=0.02)
    for side in ("query", "result"):
        assert np.sum(body[side]["grid"]) == pytest.approx(body["score"], abs=1e-3)
        overlay = Image.open(io.BytesIO(base64.b64decode(body[side]["overlay_png"])))
        assert overlay.format == "PNG" and max(overlay.size) == 512
    upload = ImageOps.mirror(Image.open(io.BytesIO(client.get(f"/v1/images/{query}/file").content)))
    buffer = io.BytesIO()
    upload.save(buffer, format="JPEG", quality=95)
    posted = client.post("/v1/explain", params={"result": result},
                         files={"file": ("q.jpg", buffer.getvalue())})
    assert posted.status_code == 200 and posted.json()["score"] > 0.3
    missing = client.get("/v1/explain", params={"query": query, "result": 10**9})
    assert missing.status_code == 404 and "no image with id" in missing.json()["detail"]


def metric(text: str, line_start: str) -> float:
    line = next(line for line in text.splitlines() if line.startswith(line_start))
    return float(line.rsplit(" ", 1)[1])


def test_metrics_count_requests_searches_and_errors(client: TestClient, photo_dir: Path) -> None:
    before = client.get("/metrics").text
    query = sorted(photo_dir.glob("*.jpg"))[0].read_bytes()
    client.post("/v1/search", files={"file": ("q.jpg", query)})
    client.get("/v1/images/999999")
    text = client.get("/metrics").text
    searches = 'lookalike_searches_total{query="upload"}'
    earlier = metric(before, searches) if searches in before else 0
    assert metric(text, searches) == earlier + 1
    assert metric(text, 'lookalike_http_errors_total{route="/v1/images/{image_id}",status="404"}')
    assert 'lookalike_http_request_duration_seconds_bucket{le="0.005",method="POST",' \
           'route="/v1/search"}' in text
    assert metric(text, 'lookalike_space_vectors{space="mobilenet_v2-gap"}') == 23
    assert metric(text, 'lookalike_images{status="embedded"}') == 23
    assert metric(text, "lookalike_catalog_up") == 1
    assert metric(text, "lookalike_http_requests_in_flight") == 1  # the scrape itself


def test_readyz_catches_replicas_up_with_the_catalog(client: TestClient, catalog: Settings,
                                                     photo_dir: Path, tmp_path: Path) -> None:
    assert client.get("/readyz").status_code == 200
    photo = Image.open(sorted(photo_dir.glob("*.jpg"))[3])
    ImageOps.flip(photo).save(tmp_path / "flipped.jpg")
    writer = open_runtime(catalog)  # another process's ingest, seen only through the catalog
    ingest_into(writer, tmp_path / "flipped.jpg")
    writer.close()
    lag = 'lookalike_replica_lag_changes{space="mobilenet_v2-gap"}'
    assert metric(client.get("/metrics").text, lag) == 1
    ready = client.get("/readyz")
    assert ready.status_code == 200, ready.text
    space = ready.json()["spaces"]["mobilenet_v2-gap"]
    assert space["caught_up"] and space["watermark"] == space["catalog_seq"]
    assert metric(client.get("/metrics").text, lag) == 0


def test_not_ready_while_the_catalog_is_unreachable(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, database_url="postgresql+psycopg://nobody@127.0.0.1:9/x")
    readiness = check_readiness(Runtime(settings))
    assert not readiness.ready and readiness.catalog.startswith("unreachable")


def test_request_ids_come_back_and_are_in_the_json_logs(
        client: TestClient, capsys: pytest.CaptureFixture[str]) -> None:
    given = client.get("/healthz", headers={"X-Request-ID": "probe-42"})
    assert given.headers["x-request-id"] == "probe-42"
    made = client.get("/healthz", headers={"X-Request-ID": "bad id with spaces"})
    assert len(made.headers["x-request-id"]) == 32 and " " not in made.headers["x-request-id"]
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    access = [line for line in lines if line["logger"] == "lookalike.access"]
    assert {line["request_id"] for line in access} == {"probe-42", made.headers["x-request-id"]}
    assert access[0]["route"] == "/healthz" and access[0]["status"] == 200


def test_an_unhandled_error_is_a_json_500_naming_the_request_id_in_the_log(
        caplog: pytest.LogCaptureFixture) -> None:
    async def failing(scope: Scope, receive: Receive, send: Send) -> None:
        raise ValueError("a bug nothing handled")

    client = TestClient(RequestContext(failing, metrics=Metrics()), raise_server_exceptions=True)
    with caplog.at_level(logging.ERROR, logger="lookalike.api"):
        response = client.get("/v1/anything", headers={"X-Request-ID": "probe-500"})
    assert response.status_code == 500
    assert response.headers["x-request-id"] == "probe-500"
    assert response.json()["error"] == "internal" and "probe-500" in response.json()["detail"]
    (record,) = [r for r in caplog.records if r.name == "lookalike.api"]
    assert "a bug nothing handled" in caplog.text and record.exc_info is not None
