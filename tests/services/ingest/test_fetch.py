"""Fetching by URL: refused destinations, pinned addresses, checked redirects, byte and time
limits, and messages that never repeat what the target answered.

Every server here listens on 127.0.0.1 or 127.0.0.2; the other refused addresses are only
ever named in URLs, with every way of opening a socket made to fail the test.
"""

from __future__ import annotations

import ipaddress
import shutil
import socket
import ssl
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import certifi
import pytest

from lookalike.retrieval.errors import ImageRejected
from lookalike.services.config import Settings
from lookalike.services.errors import FetchFailed, FetchRefused
from lookalike.services.ingest.addresses import AllowList, allow_entry, refusal
from lookalike.services.ingest.fetch import fetch_bytes
from tests import imagefactory
from tests.localhttp import QuietHandler, Server, serving
from tests.services.conftest import make_settings

PHOTO = imagefactory.jpeg_bytes(size=(64, 48))
SECRET = "internal-token-7f3a"
ENDLESS_BYTES = 64 << 20
CHUNK = 64 << 10
LOOKUP = socket.getaddrinfo

REFUSED = {
    "10.0.0.1": "private", "172.16.0.1": "private", "192.168.1.1": "private",
    "169.254.169.254": "link-local", "100.64.0.1": "carrier-grade NAT",
    "224.0.0.1": "multicast", "0.0.0.0": "unspecified", "::1": "loopback",
    "fe80::1": "link-local", "fc00::1": "private", "::ffff:127.0.0.1": "loopback",
    "::127.0.0.1": "loopback", "64:ff9b::a00:1": "private", "2002:c0a8:101::": "private",
    "240.0.0.1": "reserved", "ff02::1": "multicast", "::": "unspecified",
}


class Routes(QuietHandler):
    """The test target: a photo, redirect chains, errors with a secret in the body, an
    endless body, a declared huge body, a trickling body and a stalled one."""

    def do_GET(self) -> None:
        path, _, query = self.path.partition("?")
        if path == "/photo.jpg":
            self._answer(200, PHOTO, "text/plain")
        elif path.startswith("/hop/"):
            left = int(path.rsplit("/", 1)[1])
            self._redirect(f"/hop/{left - 1}" if left else "/photo.jpg")
        elif path == "/to":
            self._redirect(urllib.parse.parse_qs(query)["url"][0])
        elif path == "/error":
            self._answer(500, SECRET.encode(), "text/plain")
        elif path == "/page":
            self._answer(200, f"<html>{SECRET}</html>".encode() * 10, "image/jpeg")
        elif path == "/declared":
            self._start(200, {"Content-Length": str(10**9)})
        elif path == "/endless":
            self._endless()
        elif path in ("/trickle", "/stall"):
            self._slow(trickle=path == "/trickle")
        else:
            self._answer(404, SECRET.encode(), "text/plain")

    def _start(self, status: int, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()

    def _answer(self, status: int, body: bytes, content_type: str) -> None:
        self._start(status, {"Content-Type": content_type, "Content-Length": str(len(body))})
        self.wfile.write(body)

    def _redirect(self, location: str) -> None:
        self._start(302, {"Location": location, "Content-Length": "0"})

    def _endless(self) -> None:
        """64 MiB of a 'JPEG' with no Content-Length; counts what the client took."""
        self._start(200, {"Content-Type": "image/jpeg"})
        self.server.sent = 0  # type: ignore[attr-defined]
        try:
            self.wfile.write(PHOTO[:16])
            while self.server.sent < ENDLESS_BYTES:  # type: ignore[attr-defined]
                self.wfile.write(bytes(CHUNK))
                self.server.sent += CHUNK  # type: ignore[attr-defined]
        except OSError:
            pass
        finally:
            self.server.done.set()  # type: ignore[attr-defined]

    def _slow(self, *, trickle: bool) -> None:
        """A JPEG's first bytes, then one byte every 50 ms (trickle) or nothing, for 4 s."""
        self._start(200, {"Content-Type": "image/jpeg", "Content-Length": str(len(PHOTO))})
        ends = time.monotonic() + 4
        try:
            self.wfile.write(PHOTO[:16])
            self.wfile.flush()
            for byte in PHOTO[16:]:
                if time.monotonic() > ends:
                    break
                time.sleep(0.05 if trickle else 0.25)
                if trickle:
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
        except OSError:
            pass


def settings(tmp_path: Path, *allow: str, **overrides: object) -> Settings:
    return make_settings(tmp_path / "home", fetch_allow=list(allow), **overrides)


@pytest.fixture()
def server() -> Iterator[Server]:
    """The test target on 127.0.0.1."""
    with serving(Routes) as started:
        started.done = threading.Event()  # type: ignore[attr-defined]
        yield started


@pytest.fixture()
def no_connections(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every way to look up a name or open a socket fails the test."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"a connection or lookup was attempted: {args}")

    for name in ("create_connection", "getaddrinfo"):
        monkeypatch.setattr(socket, name, refuse)
    for name in ("connect", "connect_ex"):
        monkeypatch.setattr(socket.socket, name, refuse)


# --- The address rules, as pure functions ---------------------------------------------------


@pytest.mark.parametrize("address", sorted(REFUSED))
def test_each_refused_address_class_is_named(address: str) -> None:
    reason = refusal(ipaddress.ip_address(address))
    assert reason is not None and REFUSED[address] in reason


@pytest.mark.parametrize("address", ["93.184.216.34", "2606:4700:4700::1111",
                                     "::ffff:8.8.8.8", "2002:808:808::"])
def test_public_addresses_and_their_ipv6_forms_pass(address: str) -> None:
    assert refusal(ipaddress.ip_address(address)) is None


def test_the_allow_list_holds_networks_and_host_names() -> None:
    allow = AllowList.parse([allow_entry(e) for e in ["10.0.0.0/8", "127.0.0.2", "Img.Test."]])
    assert allow.allows_address(ipaddress.ip_address("10.9.8.7"))
    assert allow.allows_address(ipaddress.ip_address("127.0.0.2"))
    assert not allow.allows_address(ipaddress.ip_address("127.0.0.1"))
    assert allow.allows_host("img.test") and not allow.allows_host("other.test")
    with pytest.raises(ValueError, match="neither a host name nor"):
        allow_entry("http://img.test/")
    assert Settings(fetch_allow="127.0.0.2, 10.0.0.0/8", fetch_ports="80,8080").fetch_allow \
        == ["127.0.0.2/32", "10.0.0.0/8"]


# --- Refused before any connection ----------------------------------------------------------


@pytest.mark.parametrize("address", sorted(REFUSED))
def test_a_url_naming_a_refused_address_fails_without_connecting(
        tmp_path: Path, no_connections: None, address: str) -> None:
    host = f"[{address}]" if ":" in address else address
    with pytest.raises(FetchRefused) as refused:
        fetch_bytes(f"http://{host}/x.jpg", settings=settings(tmp_path))
    message = str(refused.value)
    assert f"address {ipaddress.ip_address(address)} is" in message
    assert "LOOKALIKE_FETCH_ALLOW can allow it" in message


@pytest.mark.parametrize(("url", "rule"), [
    ("ftp://93.184.216.34/x.jpg", "only http and https"),
    ("file:///etc/passwd", "only http and https"),
    ("http://93.184.216.34:8080/x.jpg", "port 8080 is not allowed"),
    ("http://me:pw@93.184.216.34/x.jpg?key=42", "credentials"),
])
def test_other_rules_refuse_before_connecting(tmp_path: Path, no_connections: None, url: str,
                                              rule: str) -> None:
    with pytest.raises(FetchRefused, match=rule) as refused:
        fetch_bytes(url, settings=settings(tmp_path))
    assert "pw" not in str(refused.value) and "key=42" not in str(refused.value)


@pytest.mark.parametrize("name", ["2130706433", "0x7f.1", "127.1"])
def test_numeric_host_names_are_judged_by_the_address_they_resolve_to(
        tmp_path: Path, no_connections: None, monkeypatch: pytest.MonkeyPatch,
        name: str) -> None:
    """Such names are resolved (the C library reads them as 127.0.0.1); here only ever as
    numbers: the lookup is limited to AI_NUMERICHOST, so no query leaves the machine."""

    def numeric_only(host: str, port: object, *args: object, **kwargs: object) -> object:
        return LOOKUP(host, port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST)

    monkeypatch.setattr(socket, "getaddrinfo", numeric_only)
    with pytest.raises(FetchRefused, match="address 127.0.0.1 is a loopback address"):
        fetch_bytes(f"http://{name}/x.jpg", settings=settings(tmp_path))


# --- Loopback servers: refused by default, reachable when allow-listed ----------------------


def test_loopback_is_refused_by_default_and_fetched_when_allowed(tmp_path: Path,
                                                                 server: Server) -> None:
    url = f"{server.root}/photo.jpg?size=small"
    with pytest.raises(FetchRefused, match="127.0.0.1 is a loopback address"):
        fetch_bytes(url, settings=settings(tmp_path))
    assert server.paths == []
    assert fetch_bytes(url, settings=settings(tmp_path, "127.0.0.1")) == PHOTO
    assert fetch_bytes(url, settings=settings(tmp_path, "127.0.0.0/8")) == PHOTO


def test_redirects_are_followed_up_to_the_limit(tmp_path: Path, server: Server) -> None:
    allowed = settings(tmp_path, "127.0.0.1")
    assert fetch_bytes(f"{server.root}/hop/4", settings=allowed) == PHOTO  # 5 redirects
    server.paths.clear()
    with pytest.raises(FetchFailed, match="more than 5 redirects"):
        fetch_bytes(f"{server.root}/hop/5", settings=allowed)
    assert len(server.paths) == 6
    with pytest.raises(FetchFailed, match="more than 1 redirects"):
        fetch_bytes(f"{server.root}/hop/1", settings=settings(tmp_path, "127.0.0.1",
                                                              fetch_max_redirects=1))


def test_a_redirect_from_an_allowed_host_to_a_refused_one_is_refused(
        tmp_path: Path, server: Server) -> None:
    with serving(Routes, "127.0.0.2") as allowed_host:
        hop = f"{allowed_host.root}/to?url={urllib.parse.quote(server.root + '/photo.jpg')}"
        with pytest.raises(FetchRefused) as refused:
            fetch_bytes(hop, settings=settings(tmp_path, "127.0.0.2"))
        assert len(allowed_host.paths) == 1
        file_hop = f"{allowed_host.root}/to?url=file:///etc/passwd"
        with pytest.raises(FetchRefused, match="only http and https"):
            fetch_bytes(file_hop, settings=settings(tmp_path, "127.0.0.2"))
    assert server.paths == []
    message = str(refused.value)
    assert "address 127.0.0.1 is a loopback address" in message
    assert f"(redirect 1 from {allowed_host.root}/to)" in message


def test_the_checked_address_is_the_one_connected_to(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """DNS rebinding: the name answers an allowed address to the check and 127.0.0.1 to any
    later lookup; the fetch must still go to the allowed address, with the real Host."""
    lookups: list[str] = []

    def rebinding(host: str, port: int, *args: int, **kwargs: int) -> object:
        if host != "images.test":
            return LOOKUP(host, port, *args, **kwargs)
        lookups.append(host)
        return LOOKUP("127.0.0.2" if len(lookups) == 1 else "127.0.0.1", port, *args, **kwargs)

    with serving(Routes, "127.0.0.2") as allowed_host:
        port = allowed_host.server_address[1]
        with serving(Routes, "127.0.0.1", port) as internal:
            monkeypatch.setattr(socket, "getaddrinfo", rebinding)
            data = fetch_bytes(f"http://images.test:{port}/photo.jpg",
                               settings=settings(tmp_path, "127.0.0.2"))
    assert data == PHOTO and lookups == ["images.test"]
    assert allowed_host.hosts == [f"images.test:{port}"] and internal.paths == []


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for images.test and its key, made by the openssl command."""
    if shutil.which("openssl") is None:
        pytest.fail("the openssl command makes the test certificate: apt-get install openssl",
                    pytrace=False)
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=images.test", "-addext", "subjectAltName=DNS:images.test",
                    "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=120)
    return cert, key


def test_https_is_verified_against_the_url_host_while_pinned_to_its_address(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, certificate: tuple[Path, Path]) -> None:
    """The socket goes to the checked address; SNI and certificate checks use the name."""
    cert, key = certificate
    names: list[str | None] = []
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)

    def record_name(_socket: ssl.SSLObject, name: str | None, _context: ssl.SSLContext) -> None:
        names.append(name)

    tls.sni_callback = record_name

    def loopback_names(host: str, port: int, *args: int, **kwargs: int) -> object:
        return LOOKUP("127.0.0.1" if host.endswith(".test") else host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", loopback_names)
    monkeypatch.setattr(certifi, "where", lambda: str(cert))  # trust the test certificate
    allowed = settings(tmp_path, "127.0.0.1")
    with serving(Routes, tls=tls) as server:
        port = server.server_address[1]
        assert fetch_bytes(f"https://images.test:{port}/photo.jpg", settings=allowed) == PHOTO
        with pytest.raises(FetchFailed, match="TLS handshake failed"):
            fetch_bytes(f"https://other.test:{port}/photo.jpg", settings=allowed)
    assert names == ["images.test", "other.test"]
    assert server.hosts == [f"images.test:{port}"]


def test_an_allowed_host_name_is_reachable_on_any_port(tmp_path: Path, server: Server,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    def images_test(host: str, port: int, *args: int, **kwargs: int) -> object:
        return LOOKUP("127.0.0.1" if host == "images.test" else host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", images_test)
    url = f"http://images.test:{server.server_address[1]}/photo.jpg"
    with pytest.raises(FetchRefused, match="loopback"):
        fetch_bytes(url, settings=settings(tmp_path))
    assert fetch_bytes(url, settings=settings(tmp_path, "images.test")) == PHOTO


# --- Bytes, time, and what messages say ------------------------------------------------------


def test_an_endless_body_is_cut_at_the_limit(tmp_path: Path, server: Server) -> None:
    with pytest.raises(ImageRejected, match="over the limit") as rejected:
        fetch_bytes(f"{server.root}/endless",
                    settings=settings(tmp_path, "127.0.0.1", max_upload_bytes=100_000))
    assert rejected.value.kind == "too_many_bytes"
    assert server.done.wait(10)  # type: ignore[attr-defined]
    assert server.sent < ENDLESS_BYTES // 4  # type: ignore[attr-defined]


def test_a_declared_huge_body_is_refused_before_reading(tmp_path: Path,
                                                        server: Server) -> None:
    with pytest.raises(ImageRejected, match="1000000000 bytes, over the limit"):
        fetch_bytes(f"{server.root}/declared", settings=settings(tmp_path, "127.0.0.1"))


@pytest.mark.parametrize("path", ["/trickle", "/stall"])
def test_a_slow_body_hits_the_deadline_of_the_whole_fetch(tmp_path: Path, server: Server,
                                                          path: str) -> None:
    """Neither a byte every 50 ms nor silence runs past the deadline, though each stays
    within the read timeout."""
    slow = settings(tmp_path, "127.0.0.1", url_timeout_s=1.0, fetch_read_timeout_s=10.0)
    started = time.monotonic()
    with pytest.raises(FetchFailed, match="deadline of 1 s"):
        fetch_bytes(f"{server.root}{path}", settings=slow)
    assert time.monotonic() - started < 3.0


@pytest.mark.parametrize(("path", "error"), [("/error", FetchFailed), ("/missing", FetchFailed),
                                             ("/page", ImageRejected)])
def test_messages_never_repeat_what_the_target_answered(tmp_path: Path, server: Server,
                                                        path: str, error: type) -> None:
    with pytest.raises(error) as failed:
        fetch_bytes(f"{server.root}{path}?token=abc", settings=settings(tmp_path, "127.0.0.1"))
    message = str(failed.value)
    assert SECRET not in message and "token" not in message
    assert f"{server.root}{path}" in message


def test_content_type_is_not_trusted_the_bytes_are(tmp_path: Path, server: Server) -> None:
    """/photo.jpg is sent as text/plain and /page as image/jpeg: only the bytes count."""
    allowed = settings(tmp_path, "127.0.0.1")
    assert fetch_bytes(f"{server.root}/photo.jpg", settings=allowed) == PHOTO
    with pytest.raises(ImageRejected, match="not an image") as rejected:
        fetch_bytes(f"{server.root}/page", settings=allowed)
    assert rejected.value.kind == "not_an_image"


def test_a_closed_port_fails_without_the_system_error(tmp_path: Path) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    with pytest.raises(FetchFailed, match="could not connect") as failed:
        fetch_bytes(f"http://127.0.0.1:{port}/x.jpg", settings=settings(tmp_path, "127.0.0.1"))
    assert "Errno" not in str(failed.value)
