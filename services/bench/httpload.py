"""A lean HTTP/1.1 load client for the speed benchmarks: prepared requests over keep-alive
connections on one asyncio loop.

The benchmarks time the server, and the client shares its two cores: httpx spends about a
millisecond of Python per request (building, encoding, parsing), which is charged to the
server's latency and, with 16 client threads, takes a core from it. Here each request is
encoded once by httpx (so its bytes are exactly what httpx sends) and then only written and
its answer read: status line, headers, a Content-Length body.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass

import httpx

HEADER_END = b"\r\n\r\n"


class BadAnswer(RuntimeError):
    """The server answered a benchmark request with something other than 200 and a body."""


@dataclass(frozen=True)
class Prepared:
    """One request, encoded once: the bytes to write on a keep-alive connection."""

    raw: bytes

    @classmethod
    def of(cls, request: httpx.Request) -> Prepared:
        body = request.read()
        target = request.url.raw_path.decode("ascii")
        lines = [f"{request.method} {target} HTTP/1.1"]
        lines += [f"{name}: {value}" for name, value in request.headers.items()]
        head = ("\r\n".join(lines)).encode("latin-1") + HEADER_END
        return cls(head + body)


def prepare_search(port: int, *, k: int, json: dict | None = None,
                   upload: bytes | None = None) -> Prepared:
    """A POST /v1/search by id (json) or by upload (multipart `file`)."""
    with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
        files = {"file": ("q.jpg", upload, "image/jpeg")} if upload is not None else None
        return Prepared.of(client.build_request("POST", "/v1/search", params={"k": k},
                                                json=json, files=files))


async def _answer(reader: asyncio.StreamReader) -> bytes:
    """Read one response; its body, or BadAnswer when the status is not 200."""
    head = await reader.readuntil(HEADER_END)
    status_line, _, header_block = head.partition(b"\r\n")
    length = None
    for line in header_block.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    if length is None:
        raise BadAnswer(f"answer without Content-Length: {status_line!r}")
    body = await reader.readexactly(length)
    if status_line.split(b" ", 2)[1] != b"200":
        raise BadAnswer(f"{status_line.decode(errors='replace')}: {body[:300]!r}")
    return body


async def _connection(port: int, requests: Sequence[Prepared], first: int, *, deadline: float,
                      most: int, times: list[float], answers: list[bytes] | None = None
                      ) -> None:
    """Send requests one after another on one connection until the deadline or `most`; each
    answer's body goes to `answers` when given."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        done = 0
        while done < most and time.perf_counter() < deadline:
            request = requests[(first + done) % len(requests)]
            started = time.perf_counter()
            writer.write(request.raw)
            body = await _answer(reader)
            times.append(time.perf_counter() - started)
            if answers is not None:
                answers.append(body)
            done += 1
    finally:
        writer.close()
        await writer.wait_closed()


def sequential(port: int, requests: Sequence[Prepared], *, count: int,
               answers: list[bytes] | None = None) -> list[float]:
    """Seconds each of `count` requests took, one at a time on one connection, after one
    request to warm the connection and the server; their bodies go to `answers` if given."""
    times: list[float] = []

    async def run() -> None:
        await _connection(port, requests, 0, deadline=float("inf"), most=1, times=[])
        await _connection(port, requests, 0, deadline=float("inf"), most=count, times=times,
                          answers=answers)

    asyncio.run(run())
    return times


def concurrent(port: int, requests: Sequence[Prepared], *, clients: int,
               seconds: float) -> tuple[float, list[float]]:
    """Requests per second that `clients` connections, each waiting for its answer before
    sending again, get for `seconds`; and each request's seconds."""
    times: list[float] = []

    async def run() -> float:
        deadline = time.perf_counter() + seconds
        started = time.perf_counter()
        await asyncio.gather(*(_connection(port, requests, n, deadline=deadline,
                                           most=1 << 62, times=times)
                               for n in range(clients)))
        return time.perf_counter() - started

    elapsed = asyncio.run(run())
    return len(times) / elapsed, times
