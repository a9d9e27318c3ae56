"""Two real `lookalike serve` processes on one PostgreSQL catalog stay in step, with the
default space on either vector backend: FAISS replicas in each process, or one Milvus (a
milvus-lite server process here) that each server's follower feeds from the change log."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from lookalike.services.bench.search import free_port, start_server
from lookalike.services.setup import init_catalog, open_runtime
from tests import imagefactory
from tests.conftest import _fresh_postgres_database
from tests.milvus_server import milvus_lite_server
from tests.services.conftest import ingest_into, make_settings

pytestmark = [pytest.mark.slow, pytest.mark.integration]

STEP_S = 2.0


@pytest.fixture(scope="module", params=["faiss", "milvus"])
def two_servers(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
                photo_dir: Path) -> Iterator[tuple[httpx.Client, httpx.Client]]:
    root = tmp_path_factory.mktemp(f"replicas-{request.param}")
    with ExitStack() as stack:
        backend = {"vector_backend": request.param}
        if request.param == "milvus":
            backend["milvus_uri"] = stack.enter_context(milvus_lite_server(root / "milvus"))
        database = _fresh_postgres_database()
        stack.callback(next, database, None)
        settings = make_settings(root / "home", next(database), **backend)
        init_catalog(settings)
        with open_runtime(settings) as runtime:
            ingest_into(runtime, photo_dir)
        env = {f"LOOKALIKE_{name.upper()}": value for name, value in backend.items()}
        ports = [free_port(), free_port()]
        servers = [start_server(settings, port, env) for port in ports]
        clients = [httpx.Client(base_url=f"http://127.0.0.1:{p}", timeout=60) for p in ports]
        yield clients[0], clients[1]
        for client, server in zip(clients, servers, strict=True):
            client.close()
            server.terminate()
            server.wait(timeout=30)


def top_ids(client: httpx.Client, data: bytes) -> list[int]:
    answer = client.post("/v1/search", params={"k": 3}, files={"file": ("q.jpg", data)})
    assert answer.status_code == 200, answer.text
    return [hit["image_id"] for hit in answer.json()["results"]]


def eventually(check, seconds: float = STEP_S) -> bool:
    """True once `check()` holds, polling until `seconds` have passed."""
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_an_upload_through_one_is_found_through_the_other_and_a_delete_too(
        two_servers: tuple[httpx.Client, httpx.Client], request: pytest.FixtureRequest) -> None:
    first, second = two_servers
    spaces = first.get("/v1/spaces").json()
    assert [s["options"]["backend"] for s in spaces if s["is_default"]] == [
        request.node.callspec.params["two_servers"]]
    data = imagefactory.cmyk_jpeg()
    added = first.post("/v1/images", files={"file": ("new.jpg", data)})
    assert added.status_code == 201, added.text
    image_id = added.json()["id"]
    assert eventually(lambda: top_ids(second, data)[0] == image_id)
    assert second.delete(f"/v1/images/{image_id}").status_code == 204
    assert eventually(lambda: image_id not in top_ids(first, data))
