"""Fetching an image by URL without letting the URL reach into the service's own network.

A URL given to an ingest job or a search names a server that this process then talks to, so
every fetch goes through one guarded path (server-side request forgery is the threat):

- **Every URL is checked, the first and each redirect's target** (`check_url`): http or
  https only; the host name resolved here, and every address it resolves to must be public
  (addresses.refusal: no loopback, private, link-local, CGNAT, multicast, reserved or
  unspecified address, nor an IPv6 form of one) unless LOOKALIKE_FETCH_ALLOW names the host
  or the address's network; a public host only on LOOKALIKE_FETCH_PORTS, an allow-listed one
  on any port. URLs with credentials are refused rather than sent on.
- **The connection goes to the address that was checked.** The connection pool is given a
  network backend (`PinnedBackend`) that opens its socket to that IP address, whatever name
  the URL holds, so no second DNS lookup happens between check and connect and a name that
  re-binds to 127.0.0.1 in between cannot move the connection. The URL itself is left
  alone: the Host header, TLS SNI and certificate verification all use the real host name.
- **Redirects are followed here, not by the HTTP library**: each Location is joined to the
  URL it came from, checked like the first URL, and fetched on a new pinned connection, at
  most LOOKALIKE_FETCH_MAX_REDIRECTS times.
- **Bounded in bytes and time**: a declared Content-Length over LOOKALIKE_MAX_UPLOAD_BYTES is
  refused before the body is read, and the body is read in chunks up to that limit. No
  Accept-Encoding is sent and nothing is decompressed, so the limit counts bytes off the
  wire. Every socket wait is cut to what is left of LOOKALIKE_URL_TIMEOUT_S, the deadline of
  the whole fetch (redirects included), besides the connect and read timeouts.
- **The bytes are sniffed, Content-Type is not trusted**: a body whose first bytes are no
  accepted image format is dropped as soon as they arrive; the decoder judges the rest.
- **Messages tell the caller which rule refused which URL, and no more**: the URL is shown
  without credentials, query or fragment; the target's body and the network library's own
  error text are never repeated.

httpcore (httpx's transport layer) is used directly: it never follows redirects, reads no
proxy settings from the environment, and takes a network backend. Not bounded by the
deadline: the host name lookup itself, which the system resolver's own timeouts bound.
"""

from __future__ import annotations

import ipaddress
import socket
import time
import typing
from dataclasses import dataclass

import httpcore
import httpx

from lookalike.retrieval.errors import ImageRejected
from lookalike.retrieval.images import SNIFF_BYTES, looks_like_image
from lookalike.services.config import Settings
from lookalike.services.errors import FetchFailed, FetchRefused
from lookalike.services.ingest.addresses import AllowList, IPAddress, refusal

SCHEMES = {"http": 80, "https": 443}
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
HEADERS = [(b"Accept", b"image/*"), (b"User-Agent", b"lookalike")]
ALLOW_HINT = "LOOKALIKE_FETCH_ALLOW can allow it"
# httpcore failures in the words a caller is told (most specific first); their own messages
# can carry internal details (addresses, OS errors) and are not repeated.
NETWORK_FAILURES: tuple[tuple[type[Exception], str], ...] = (
    (httpcore.ConnectTimeout, "timed out connecting"),
    (httpcore.TimeoutException, "timed out waiting for the server"),
    (httpcore.ConnectError, "could not connect, or the TLS handshake failed"),
    (httpcore.NetworkError, "the connection broke"),
    (httpcore.ProtocolError, "the answer is not valid HTTP"),
)


@dataclass(frozen=True)
class FetchPolicy:
    """Where and how much a fetch may go, read from the settings once per fetch."""

    allow: AllowList
    ports: frozenset[int]
    max_bytes: int
    max_redirects: int
    connect_timeout_s: float
    read_timeout_s: float
    deadline_s: float

    @classmethod
    def from_settings(cls, settings: Settings) -> FetchPolicy:
        return cls(allow=AllowList.parse(settings.fetch_allow),
                   ports=frozenset(settings.fetch_ports), max_bytes=settings.max_upload_bytes,
                   max_redirects=settings.fetch_max_redirects,
                   connect_timeout_s=settings.fetch_connect_timeout_s,
                   read_timeout_s=settings.fetch_read_timeout_s,
                   deadline_s=settings.url_timeout_s)


@dataclass(frozen=True)
class Target:
    """A checked URL and the one address its connection may go to."""

    url: httpx.URL
    address: IPAddress
    port: int


class Deadline:
    """The moment a whole fetch must be over; every socket wait is cut to the time left."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._end = time.monotonic() + seconds

    def passed(self) -> bool:
        return time.monotonic() >= self._end

    def clamp(self, timeout: float | None) -> float:
        """`timeout` cut to the time left (a millisecond once none is left: a socket wait
        with a zero timeout would not block at all, which is not a timeout)."""
        left = max(self._end - time.monotonic(), 0.001)
        return left if timeout is None else min(timeout, left)

    def message(self) -> str:
        return (f"took longer than the deadline of {self.seconds:g} s "
                "(LOOKALIKE_URL_TIMEOUT_S)")


class DeadlineStream(httpcore.NetworkStream):
    """A connection whose every read, write and TLS handshake waits no longer than the
    deadline leaves."""

    def __init__(self, stream: httpcore.NetworkStream, deadline: Deadline) -> None:
        self._stream = stream
        self._deadline = deadline

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, self._deadline.clamp(timeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, self._deadline.clamp(timeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(self, ssl_context: typing.Any, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        secured = self._stream.start_tls(ssl_context, server_hostname,
                                         self._deadline.clamp(timeout))
        return DeadlineStream(secured, self._deadline)

    def get_extra_info(self, info: str) -> typing.Any:
        return self._stream.get_extra_info(info)


class PinnedBackend(httpcore.NetworkBackend):
    """Opens every connection to the target's checked address: the host name the pool passes
    in is not looked up again, so DNS cannot change the answer after the check."""

    def __init__(self, target: Target, deadline: Deadline) -> None:
        self._target = target
        self._deadline = deadline
        self._sockets = httpcore.SyncBackend()

    def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                    local_address: str | None = None,
                    socket_options: typing.Iterable[typing.Any] | None = None,
                    ) -> httpcore.NetworkStream:
        assert (host, port) == (self._target.url.raw_host.decode("ascii"), self._target.port)
        stream = self._sockets.connect_tcp(str(self._target.address), self._target.port,
                                           self._deadline.clamp(timeout), local_address,
                                           socket_options)
        return DeadlineStream(stream, self._deadline)


def fetch_bytes(url: str, *, settings: Settings) -> bytes:
    """The body of an image URL, fetched under the rules in this module's docstring.

    FetchRefused: a URL (or a redirect's target) the rules do not allow, before any
    connection to it. FetchFailed: a network failure, an HTTP error status, too many
    redirects, the deadline. ImageRejected: a body over the byte limit or not an image.
    """
    policy = FetchPolicy.from_settings(settings)
    deadline = Deadline(policy.deadline_s)
    first = parse_url(url)
    current = first
    for hop in range(policy.max_redirects + 1):
        where = shown(current) if hop == 0 else (
            f"{shown(current)} (redirect {hop} from {shown(first)})")
        outcome = _get(check_url(current, policy, where), policy, deadline, where)
        if isinstance(outcome, bytes):
            return outcome
        current = outcome
    raise FetchFailed(f"cannot fetch {shown(first)}: more than {policy.max_redirects} "
                      "redirects (LOOKALIKE_FETCH_MAX_REDIRECTS)")


def parse_url(url: str) -> httpx.URL:
    try:
        return httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as exc:
        raise FetchRefused(f"cannot fetch: not a valid URL ({exc})") from exc


def shown(url: httpx.URL) -> str:
    """The URL as messages show it: no credentials, query or fragment."""
    return str(url.copy_with(userinfo=b"", query=None, fragment=None))


def check_url(url: httpx.URL, policy: FetchPolicy, where: str) -> Target:
    """Where `url` may be fetched from: FetchRefused naming the rule that forbids it, if
    any; `where` is the URL as messages name it."""
    if url.scheme not in SCHEMES:
        raise FetchRefused(f"cannot fetch {where}: only http and https URLs are accepted")
    if url.userinfo:
        raise FetchRefused(f"cannot fetch {where}: URLs with credentials (user:password@) "
                           "are not accepted")
    host = url.raw_host.decode("ascii")
    if not host:
        raise FetchRefused(f"cannot fetch {where}: the URL names no host")
    port = url.port or SCHEMES[url.scheme]
    addresses = resolve(host, port, where)
    named = policy.allow.allows_host(host)
    for address in addresses:
        reason = None if named or policy.allow.allows_address(address) else refusal(address)
        if reason is not None:
            raise FetchRefused(f"cannot fetch {where}: address {address} is {reason}; "
                               f"{ALLOW_HINT}")
    listed = named or all(policy.allow.allows_address(address) for address in addresses)
    if port not in policy.ports and not listed:
        allowed = ", ".join(str(p) for p in sorted(policy.ports))
        raise FetchRefused(f"cannot fetch {where}: port {port} is not allowed; allowed: "
                           f"{allowed} (LOOKALIKE_FETCH_PORTS), or any port of a host that "
                           "LOOKALIKE_FETCH_ALLOW names")
    return Target(url=url, address=addresses[0], port=port)


def resolve(host: str, port: int, where: str) -> list[IPAddress]:
    """The addresses of `host`: itself when it is an IP literal (no lookup), else what the
    system resolver answers, in its order, each once."""
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise FetchFailed(f"cannot fetch {where}: host name {host} does not resolve") from exc
    return list(dict.fromkeys(ipaddress.ip_address(info[4][0]) for info in found))


def _get(target: Target, policy: FetchPolicy, deadline: Deadline,
         where: str) -> bytes | httpx.URL:
    """One GET on a pinned connection: the body, or the URL a redirect points to."""
    timeouts = {"connect": policy.connect_timeout_s, "read": policy.read_timeout_s,
                "write": policy.read_timeout_s, "pool": policy.connect_timeout_s}
    url = httpcore.URL(scheme=target.url.raw_scheme, host=target.url.raw_host,
                       port=target.port, target=target.url.raw_path)
    backend = PinnedBackend(target, deadline)
    try:
        with httpcore.ConnectionPool(network_backend=backend, retries=0) as pool, \
                pool.stream("GET", url, headers=HEADERS,
                            extensions={"timeout": timeouts}) as response:
            if response.status in REDIRECT_STATUSES:
                return _redirect_target(response, target.url, where)
            if response.status != 200:
                raise FetchFailed(f"GET {where} answered HTTP {response.status}")
            return _read_body(response, policy, deadline, where)
    except tuple(kind for kind, _ in NETWORK_FAILURES) as exc:
        raise FetchFailed(f"GET {where} failed: {_network_failure(exc, deadline)}") from exc


def _network_failure(exc: Exception, deadline: Deadline) -> str:
    if deadline.passed():
        return deadline.message()
    return next(words for kind, words in NETWORK_FAILURES if isinstance(exc, kind))


def _header(response: httpcore.Response, name: bytes) -> str | None:
    for key, value in response.headers:
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def _redirect_target(response: httpcore.Response, current: httpx.URL,
                     where: str) -> httpx.URL:
    location = _header(response, b"location")
    if location is None:
        raise FetchFailed(f"GET {where} answered HTTP {response.status} without a Location")
    try:
        return current.join(location)
    except httpx.InvalidURL as exc:
        raise FetchFailed(f"GET {where} redirected to an invalid URL") from exc


def _read_body(response: httpcore.Response, policy: FetchPolicy, deadline: Deadline,
               where: str) -> bytes:
    """The body, refused as soon as it is over the byte limit, late, or not an image."""
    declared = _header(response, b"content-length")
    if declared is not None and declared.isdigit() and int(declared) > policy.max_bytes:
        raise ImageRejected("too_many_bytes", f"{where} is {declared} bytes, over the limit "
                            f"of {policy.max_bytes} (LOOKALIKE_MAX_UPLOAD_BYTES)")
    body = bytearray()
    for chunk in response.iter_stream():
        body += chunk
        if len(body) > policy.max_bytes:
            raise ImageRejected("too_many_bytes", f"{where} sent more than {policy.max_bytes} "
                                "bytes, over the limit (LOOKALIKE_MAX_UPLOAD_BYTES)")
        if deadline.passed():
            raise FetchFailed(f"GET {where} failed: {deadline.message()}")
        if len(body) - len(chunk) < SNIFF_BYTES <= len(body):
            _sniff(bytes(body[:SNIFF_BYTES]), where)
    return bytes(body)


def _sniff(prefix: bytes, where: str) -> None:
    """Stop at the first bytes when they are no accepted image format's, whatever the
    Content-Type said; a body that passes is judged whole by the decoder later."""
    if not looks_like_image(prefix):
        raise ImageRejected("not_an_image", f"{where} is not an image in an accepted format "
                            "(by its first bytes; Content-Type is not trusted)")
