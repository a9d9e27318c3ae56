"""Tiny HTTP servers on loopback addresses, each in a thread, for tests that fetch URLs."""

from __future__ import annotations

import functools
import http.server
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class Server(http.server.ThreadingHTTPServer):
    """A threaded server that remembers the path of every request it was sent."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int],
                 handler: type[http.server.BaseHTTPRequestHandler]) -> None:
        super().__init__(address, handler)
        self.paths: list[str] = []
        self.hosts: list[str | None] = []

    @property
    def root(self) -> str:
        host, port = self.server_address[:2]
        scheme = "https" if isinstance(self.socket, ssl.SSLSocket) else "http"
        return f"{scheme}://{host}:{port}"


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    """Serves a folder, records each request on its server, and logs nothing."""

    server: Server

    def parse_request(self) -> bool:
        parsed = super().parse_request()
        if parsed:
            self.server.paths.append(self.path)
            self.server.hosts.append(self.headers.get("Host"))
        return parsed

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (base's name)
        """Tests read requests from the server, not from stderr."""


@contextmanager
def serving(handler: type[QuietHandler], host: str = "127.0.0.1", port: int = 0,
            tls: ssl.SSLContext | None = None, **handler_options: object) -> Iterator[Server]:
    """A server on `host` (any 127.0.0.0/8 address; port 0 picks a free one), speaking
    HTTPS when given a server-side `tls` context; stopped after."""
    bound = functools.partial(handler, **handler_options) if handler_options else handler
    server = Server((host, port), bound)  # type: ignore[arg-type]
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def serving_directory(directory: Path, host: str = "127.0.0.1") -> Iterator[Server]:
    """The files of `directory` over HTTP on `host`."""
    with serving(QuietHandler, host, directory=str(directory)) as server:
        yield server
