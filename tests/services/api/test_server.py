"""A real `lookalike serve` process over HTTP: searches, bad inputs, and it stays up."""

from __future__ import annotations

import http.client
import io
import os
import re
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from PIL import Image

from lookalike.services.bench.search import (
    ESTABLISHED,
    LISTEN,
    free_port,
    start_server,
    tcp_sockets,
)
from lookalike.services.config import Settings
from lookalike.services.setup import init_catalog, open_runtime
from tests import imagefactory
from tests.services.conftest import ingest_into, make_settings

pytestmark = [pytest.mark.slow, pytest.mark.integration]

LIMIT = 2_000_000


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, photo_dir: Path) -> Iterator[httpx.Client]:
    settings: Settings = make_settings(tmp_path_factory.mktemp("server") / "home")
    init_catalog(settings)
    runtime = open_runtime(settings)
    ingest_into(runtime, photo_dir)
    runtime.close()
    port = free_port()
    process = start_server(settings, port, {"LOOKALIKE_MAX_UPLOAD_BYTES": str(LIMIT),
                                            "LOOKALIKE_RATE_SEARCH_UPLOAD": "1000/minute"})
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
        yield client
    process.terminate()
    process.wait(timeout=30)


def big_jpeg(min_bytes: int) -> bytes:
    """A real photo-sized JPEG bigger than `min_bytes` (noise-free, just large)."""
    photo = Image.open(io.BytesIO(imagefactory.jpeg_bytes())).convert("RGB")
    side = 3000
    while True:
        buffer = io.BytesIO()
        photo.resize((side, side)).save(buffer, format="JPEG", quality=100)
        if buffer.tell() > min_bytes:
            return buffer.getvalue()
        side += 1000


def test_search_over_http(server: httpx.Client, photo_dir: Path) -> None:
    query = sorted(photo_dir.glob("*.jpg"))[2]
    answer = server.post("/v1/search", params={"k": 5},
                         files={"file": ("q.jpg", query.read_bytes())})
    assert answer.status_code == 200
    assert answer.json()["results"][0]["source"] == str(query.resolve())
    first_id = answer.json()["results"][0]["image_id"]
    by_id = server.post("/v1/search", json={"image_id": first_id}).json()
    assert by_id["results"][0]["image_id"] == first_id
    page = server.get("/docs")
    assert page.status_code == 200
    scripts = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert scripts and all(url.startswith("/docs-assets/") for url in scripts), scripts
    for url in scripts:  # offline: every file the page loads comes from this server
        assert server.get(url).status_code == 200, url


def test_concurrent_searches_get_the_answers_of_sequential_ones(
        server: httpx.Client, photo_dir: Path) -> None:
    """16 clients at once (their query images embedded in shared model calls) get the
    hits and scores that the same uploads get one at a time."""
    queries = [path.read_bytes() for path in sorted(photo_dir.glob("*.jpg"))[:8]] * 2

    def search(data: bytes) -> list[tuple[int, float]]:
        answer = server.post("/v1/search", params={"k": 5}, files={"file": ("q.jpg", data)})
        assert answer.status_code == 200, answer.text
        return [(hit["image_id"], hit["score"]) for hit in answer.json()["results"]]

    alone = [search(data) for data in queries[:8]] * 2
    with ThreadPoolExecutor(len(queries)) as pool:
        together = list(pool.map(search, queries))
    for one, other in zip(alone, together, strict=True):
        assert [i for i, _ in one] == [i for i, _ in other]
        assert [s for _, s in one] == pytest.approx([s for _, s in other], abs=1e-5)


@pytest.mark.parametrize(
    ("make", "status", "error"),
    [*imagefactory.BAD_UPLOADS, (lambda: big_jpeg(LIMIT + 200_000), 413, "too_many_bytes")],
    ids=["text", "empty", "truncated", "bomb", "over-byte-limit"],
)
def test_bad_input_gets_a_json_error_and_the_server_stays_up(
        server: httpx.Client, make: Callable[[], bytes], status: int, error: str) -> None:
    data = make()
    before = server.get("/v1/spaces").json()[0]["vector_count"]
    for route in ("/v1/images", "/v1/search"):
        answer = server.post(route, files={"file": ("upload.jpg", data)})
        assert answer.status_code == status, answer.text
        assert answer.json()["error"] == error
    assert server.get("/healthz").json()["status"] == "ok"
    assert server.get("/v1/spaces").json()[0]["vector_count"] == before


def test_rotated_cmyk_and_animated_uploads_are_accepted(server: httpx.Client) -> None:
    for data in (imagefactory.exif_rotated_jpeg(), imagefactory.cmyk_jpeg(),
                 imagefactory.animated_gif()):
        answer = server.post("/v1/images", files={"file": ("ok", data)})
        assert answer.status_code == 201, answer.text
        hits = server.post("/v1/search", params={"k": 1},
                           files={"file": ("q", data)}).json()["results"]
        assert hits[0]["image_id"] == answer.json()["id"]


def _sockets_of(pid: str) -> set[str]:
    """Inodes of the sockets process `pid` holds open."""
    links = (os.readlink(entry) for entry in Path(f"/proc/{pid}/fd").iterdir())
    return {link[8:-1] for link in links if link.startswith("socket:[")}


def _burst(port: int, count: int) -> list[http.client.HTTPConnection]:
    """`count` connections opened at once, then each answered once, kept open."""
    connections = [http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                   for _ in range(count)]
    for connection in connections:
        connection.connect()
    for connection in connections:
        connection.request("GET", "/healthz")
        assert connection.getresponse().read()
    return connections


def test_worker_processes_share_the_port_and_stay_in_step(tmp_path: Path,
                                                          photo_dir: Path) -> None:
    """LOOKALIKE_SERVE_WORKERS=2 (as a container sets it; `serve --workers` in the speed
    bench): two server processes answer on one port, each with its own listening socket (so
    a burst of new connections is spread over them) and its own replica; an image added
    through one is found first by id through either, at once."""
    settings = make_settings(tmp_path / "home")
    init_catalog(settings)
    runtime = open_runtime(settings)
    ingest_into(runtime, photo_dir)
    runtime.close()
    port = free_port()
    process = start_server(settings, port, {"LOOKALIKE_SERVE_WORKERS": "2"}, workers=None,
                           timeout_s=300)
    try:
        children = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
        servers = [pid for pid in children  # multiprocessing also starts a resource tracker
                   if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()]
        assert len(servers) == 2
        listening = [_sockets_of(pid) & tcp_sockets(port, LISTEN) for pid in servers]
        assert all(len(own) == 1 for own in listening), listening
        assert listening[0] != listening[1]  # a socket each, not one shared accept queue
        for _ in range(5):  # a burst of new keep-alive connections reaches both processes
            held = _burst(port, 16)
            established = tcp_sockets(port, ESTABLISHED)
            assert all(_sockets_of(pid) & established for pid in servers)
            for connection in held:
                connection.close()
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            added = client.post("/v1/images", files={
                "file": ("new.jpg", imagefactory.cmyk_jpeg(), "image/jpeg")})
            assert added.status_code == 201, added.text
            new_id = added.json()["id"]
        for _ in range(12):  # new connections: both processes accept them
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
                found = client.post("/v1/search", params={"k": 1}, json={"image_id": new_id})
                assert found.status_code == 200, found.text
                assert found.json()["results"][0]["image_id"] == new_id
    finally:
        process.terminate()
        process.wait(timeout=30)
