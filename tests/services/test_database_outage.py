"""PostgreSQL goes away under a running `lookalike serve`: 503 with a reason, then recovery."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from lookalike.services.bench.search import free_port, start_server
from lookalike.services.setup import init_catalog, open_runtime
from tests.conftest import _fresh_postgres_database
from tests.services.conftest import ingest_into, make_settings

pytestmark = [pytest.mark.slow, pytest.mark.integration]

POSTGRES = ("127.0.0.1", 5432)


def _drop(sock: socket.socket) -> None:
    """Shut the connection down (waking any thread blocked on it), then release it."""
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


class TcpProxy:
    """A loopback TCP relay to PostgreSQL that can be cut (every connection dropped, new ones
    refused) and restored on the same port: the database 'unreachable' without stopping it."""

    def __init__(self) -> None:
        self.port = free_port()
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self.resume()

    def resume(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen()
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        with self._lock:
            sockets, self._sockets = self._sockets, []
            listener, self._listener = self._listener, None
        for sock in [*sockets, listener]:
            if sock is not None:
                _drop(sock)

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(POSTGRES)
            with self._lock:
                self._sockets += [client, upstream]
            for source, target in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, target), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, target: socket.socket) -> None:
        with contextlib.suppress(OSError):  # a cut connection is how a pump ends
            while data := source.recv(65536):
                target.sendall(data)
        for sock in (source, target):
            _drop(sock)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory,
           photo_dir: Path) -> Iterator[tuple[httpx.Client, TcpProxy]]:
    database = _fresh_postgres_database()
    direct = next(database)
    proxy = TcpProxy()
    through_proxy = direct.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
    settings = make_settings(tmp_path_factory.mktemp("outage") / "home", through_proxy)
    init_catalog(settings)
    runtime = open_runtime(settings)
    ingest_into(runtime, photo_dir)
    runtime.close()
    port = free_port()
    server = start_server(settings, port)
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
        yield client, proxy
    server.terminate()
    server.wait(timeout=30)
    proxy.cut()
    next(database, None)


def search_first(client: httpx.Client) -> httpx.Response:
    return client.post("/v1/search", params={"k": 1}, json={"image_id": 1})


def test_an_unreachable_catalog_is_a_503_with_a_reason_and_recovers(served) -> None:
    client, proxy = served
    assert search_first(client).status_code == 200

    proxy.cut()
    down = search_first(client)
    health = client.get("/healthz")

    assert down.status_code == 503
    assert down.json()["error"] == "catalog_unavailable"
    assert health.status_code == 503
    assert health.json()["catalog"].startswith("unreachable")

    proxy.resume()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and search_first(client).status_code != 200:
        time.sleep(0.5)
    assert search_first(client).json()["results"][0]["image_id"] == 1
    assert client.get("/healthz").json() == {"status": "ok", "catalog": "ok"}
