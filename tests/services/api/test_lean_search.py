"""The lean route for searches by id and by upload (services/api/leansearch.py): a plain
search by id or by upload gets the answer the FastAPI route gives, and every other request
to POST /v1/search reaches the FastAPI route with its body whole, so its validation and
options are unchanged."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lookalike.services.api import leansearch
from lookalike.services.api.app import create_app
from lookalike.services.api.leansearch import LeanSearch
from lookalike.services.runtime import Runtime
from lookalike.services.search.query import SearchResult, search_vector


class FastApiDoor:
    """Wraps the lean route's way to the FastAPI route and keeps the bodies that took it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.bodies: list[bytes] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = await receive()
        self.bodies.append(message["body"])

        async def again() -> Message:
            return message

        await self.app(scope, again, send)


@pytest.fixture()
def served(photo_home: Runtime) -> Iterator[tuple[TestClient, FastApiDoor]]:
    app = create_app(photo_home.settings)
    lean = next(route for route in app.router.routes if isinstance(route, LeanSearch))
    door = lean.router = FastApiDoor(lean.router)
    with TestClient(app) as client:
        yield client, door


def by_id(client: TestClient, query: str, image_id: int):
    return client.post(f"/v1/search?{query}", content=b'{"image_id": %d}' % image_id,
                       headers={"content-type": "application/json"})


def without_time(answer: dict) -> dict:
    return {key: value for key, value in answer.items() if key != "took_ms"}


def test_a_plain_search_by_id_is_answered_as_the_fastapi_route_answers(
        served: tuple[TestClient, FastApiDoor]) -> None:
    client, door = served
    by_id(client, "k=3", 1)  # a first search keeps what the lean route reads: the space
    door.bodies.clear()
    lean = by_id(client, "k=3", 2)
    assert door.bodies == []
    full = by_id(client, "k=3&group_videos=true", 2)
    assert door.bodies == [b'{"image_id": 2}']
    assert lean.status_code == full.status_code == 200
    assert lean.headers["content-type"] == full.headers["content-type"]
    assert without_time(lean.json()) == without_time(full.json())
    assert [hit["image_id"] for hit in lean.json()["results"]][0] == 2
    space = lean.json()["space"]
    by_id(client, f"space={space}&k=2", 1)  # the space by name, kept from now on
    door.bodies.clear()
    named = by_id(client, f"space={space}&k=2", 2)
    assert door.bodies == []
    assert named.json()["results"] == lean.json()["results"][:2]


def test_an_unknown_id_gets_the_fastapi_routes_error(
        served: tuple[TestClient, FastApiDoor]) -> None:
    client, door = served
    by_id(client, "k=10", 1)
    door.bodies.clear()
    lean = by_id(client, "k=10", 999_999)
    assert door.bodies == []
    full = by_id(client, "group_videos=true", 999_999)
    assert lean.status_code == full.status_code == 404
    assert lean.json() == full.json()


@pytest.mark.parametrize(("query", "body", "status"), [
    ("k=0", b'{"image_id": 1}', 422),
    ("k=1001", b'{"image_id": 1}', 422),
    ("k=ten", b'{"image_id": 1}', 422),
    ("k=3&k=4", b'{"image_id": 1}', 200),
    ("k=3&qe=false", b'{"image_id": 1}', 200),
    ("k=3&box=0,0,10,10", b'{"image_id": 1}', 200),
    ("k=3", b'{"image_id": true}', 422),
    ("k=3", b'{"image_id": 0}', 422),
    ("k=3", b'{"image_id": "1"}', 422),
    ("k=3", b'{"image_id": 1, "text": "astronaut"}', 200),
    ("k=3", b'{"image_id": 1, "url": "http://example.com/a.jpg"}', 422),
    ("k=3", b'{"text": "astronaut"}', 200),
    ("k=3", b'[1]', 422),
    ("k=3", b'{"image_id": 1', 422),
    ("k=3", b"[" * 20_000 + b"]" * 20_000, 422),  # deeper than Python's json recurses
    ("k=3", b'{"image_id": ' + b"[" * 20_000 + b"]" * 20_000 + b"}", 422),
])
def test_every_other_request_reaches_the_fastapi_route_with_its_body(
        served: tuple[TestClient, FastApiDoor], query: str, body: bytes, status: int) -> None:
    client, door = served
    by_id(client, "k=10", 1)
    door.bodies.clear()
    answer = client.post(f"/v1/search?{query}", content=body,
                         headers={"content-type": "application/json"})
    assert door.bodies == [body]
    assert answer.status_code == status, answer.text


def by_upload(client: TestClient, query: str, files: dict):
    return client.post(f"/v1/search?{query}", files=files)


def test_a_plain_search_by_upload_is_answered_as_the_fastapi_route_answers(
        served: tuple[TestClient, FastApiDoor], photo_dir: Path) -> None:
    client, door = served
    photo = sorted(photo_dir.glob("*.jpg"))[2]
    files = {"file": ("q.jpg", photo.read_bytes(), "image/jpeg")}
    lean = by_upload(client, "k=4", files)
    assert door.bodies == []
    full = by_upload(client, "k=4&group_videos=true", files)
    assert len(door.bodies) == 1 and photo.read_bytes() in door.bodies[0]
    assert lean.status_code == full.status_code == 200
    assert without_time(lean.json()) == without_time(full.json())
    assert lean.json()["results"][0]["source"] == str(photo.resolve())
    assert len(lean.json()["results"]) == 4


@pytest.mark.parametrize(("fields", "status"), [
    ({"image": ("q.jpg", b"x", "image/jpeg")}, 422),
    ({"file": (None, "not a file")}, 422),
    ({"text": (None, "astronaut")}, 200),
    ({"file": ("q.jpg", b"x", "image/jpeg"), "text": (None, "astronaut")}, 415),
])
def test_other_multipart_bodies_reach_the_fastapi_route(
        served: tuple[TestClient, FastApiDoor], fields: dict, status: int) -> None:
    client, door = served
    answer = by_upload(client, "k=3", fields)
    assert len(door.bodies) == 1
    assert answer.status_code == status, answer.text


def test_a_broken_multipart_body_gets_the_fastapi_routes_error(
        served: tuple[TestClient, FastApiDoor]) -> None:
    client, door = served
    body = b"--edge\r\nContent-Disposition: form-data; name=file; filename=q.jpg\r\n"
    answer = client.post("/v1/search", content=body,
                         headers={"content-type": "multipart/form-data; boundary=edge"})
    assert door.bodies == [body]
    assert answer.status_code in (400, 422), answer.text


def test_an_upload_that_is_not_an_image_gets_the_fastapi_routes_error(
        served: tuple[TestClient, FastApiDoor]) -> None:
    client, door = served
    files = {"file": ("q.jpg", b"not an image", "image/jpeg")}
    lean = by_upload(client, "k=3", files)
    assert door.bodies == []
    full = by_upload(client, "k=3&group_videos=true", files)
    assert lean.status_code == full.status_code == 415
    assert lean.json() == full.json()


def test_a_lone_search_runs_on_the_event_loop_and_company_goes_to_threads(
        photo_home: Runtime, photo_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    threads: list[int] = []

    def noting_thread(*args: Any, **kwargs: Any) -> SearchResult:
        threads.append(threading.get_ident())
        return search_vector(*args, **kwargs)

    monkeypatch.setattr(leansearch, "search_vector", noting_thread)
    photo = sorted(photo_dir.glob("*.jpg"))[1].read_bytes()
    app = create_app(photo_home.settings)

    async def searches(together: int) -> list[int]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            answers = await asyncio.gather(*(
                client.post("/v1/search?k=2", files={"file": ("q.jpg", photo, "image/jpeg")})
                for _ in range(together)))
        assert [answer.status_code for answer in answers] == [200] * together
        return [answer.json()["results"][0]["image_id"] for answer in answers]

    async def run() -> None:
        async with app.router.lifespan_context(app):
            loop_thread = threading.get_ident()
            first = await searches(1)
            assert threads == [loop_thread]
            threads.clear()
            assert await searches(3) == first * 3
            assert len(threads) == 3 and loop_thread not in threads

    asyncio.run(run())
