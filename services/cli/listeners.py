"""`lookalike serve --workers N`: each server process listens on a socket of its own.

uvicorn's worker processes inherit the parent's one listening socket, so they share one
accept queue: the kernel wakes the process that waited last, and it accepts a whole burst
of new connections while the others idle (all 16 connections of a 16-client burst went to
one of two processes in about a third of the bursts measured, and that process, holding the
GIL for every request's decoding and answer, served 130 requests/s where two served 180).
With a socket per process, each bound to the address with SO_REUSEPORT, Linux hands every
new connection to one of the sockets by a hash of its addresses, so keep-alive clients
spread over the processes whoever is awake.
"""

from __future__ import annotations

import logging
import socket
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger("uvicorn.error")


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def reuse_port_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to (host, port) in the port's SO_REUSEPORT group, not yet listening."""
    sock = socket.socket(_family(host), socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host.strip("[]"), port))
    return sock


def claim_port(host: str, port: int) -> int:
    """The port the workers will share (a free one for 0), once no other program listens
    there: a plain bind fails where any socket listens, SO_REUSEPORT group or not, so a
    second server on the same port is refused instead of quietly taking a share of it."""
    with socket.socket(_family(host), socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((host.strip("[]"), port))
        bound: int = probe.getsockname()[1]
    return bound


@dataclass(frozen=True)
class OwnSocket:
    """Stands in uvicorn's list of listening sockets: uvicorn pickles that list into each
    worker process it spawns (and into each one it restarts), and unpickling this builds a
    socket bound to (host, port) in that process, its own."""

    host: str
    port: int

    def __reduce__(self) -> tuple[Any, tuple[str, int]]:
        return reuse_port_socket, (self.host, self.port)


def serve_workers(app: str, *, host: str, port: int, workers: int, **options: Any) -> None:
    """Run `workers` uvicorn processes of the app factory `app`, each on its own socket."""
    from uvicorn import Config  # noqa: PLC0415 - only `serve` needs the server
    from uvicorn.supervisors import Multiprocess  # noqa: PLC0415

    config = Config(app, host=host, port=port, workers=workers, **options)
    try:
        port = claim_port(host, port)
        reserved = reuse_port_socket(host, port)
    except OSError as error:
        raise SystemExit(f"cannot listen on {host}:{port}: {error.strerror}; stop what "
                         "listens there or choose another --port") from error
    with reserved:  # bound, never listening: holds the port between worker restarts
        logger.info("Uvicorn running on http://%s:%d, %d processes, each on its own socket "
                    "(SO_REUSEPORT)", host, port, workers)
        Multiprocess(config, sockets=[OwnSocket(host, port)]).run()  # type: ignore[list-item]
