"""Keys and scopes: every route against no key, a wrong key, a revoked key and each scope;
server paths fenced under the ingest roots; the secret printed once and never stored."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from lookalike.services.api.app import create_app
from lookalike.services.auth.keys import create_api_key, revoke_api_key, secret_sha256
from lookalike.services.auth.redact import shown_source
from lookalike.services.catalog.models import ApiKey
from lookalike.services.cli.serve import is_loopback
from lookalike.services.runtime import Runtime
from tests import imagefactory
from tests.services.conftest import make_settings

pytestmark = pytest.mark.slow

ROLES = ("search", "ingest", "admin")


@pytest.fixture()
def keyed(photo_home: Runtime) -> Iterator[tuple[TestClient, dict[str, str]]]:
    """A server on a catalog with one key per scope (so keys are required)."""
    secrets = {role: create_api_key(photo_home, name=f"{role}-key", scopes=role)[1]
               for role in ROLES}
    # every server path may be read, so a job over a missing folder reaches its own checks
    settings = photo_home.settings.model_copy(update={"ingest_roots": [Path("/")]})
    with TestClient(create_app(settings)) as client:
        yield client, secrets


def _routes(upload: bytes) -> list[tuple[str, str, str, dict]]:
    """(method, path, scope it needs, request keywords): one of each kind of route."""
    return [
        ("POST", "/v1/search?k=2", "search", {"json": {"image_id": 1}}),
        ("GET", "/v1/images", "search", {}),
        ("GET", "/v1/images/1", "search", {}),
        ("GET", "/v1/images/1/thumbnail", "search", {}),
        ("GET", "/v1/images/1/file", "search", {}),
        ("GET", "/v1/spaces", "search", {}),
        ("GET", "/v1/spaces/mobilenet_v2-gap/visualize/filters.png", "search", {}),
        ("POST", "/v1/spaces/mobilenet_v2-gap/visualize/saliency", "search",
         {"files": {"file": ("query.png", upload)}}),
        ("GET", "/v1/explain?query=1&result=2", "search", {}),
        ("POST", "/v1/search?k=2", "search", {"json": {"text": "coffee"}}),
        ("POST", "/v1/copies", "search", {"json": {"image_id": 1}}),
        ("POST", "/v1/text/classify", "search", {"json": {"text": "shares fell"}}),
        ("POST", "/v1/detect?detector=nope", "search", {"files": {"file": ("q.png", upload)}}),
        ("GET", "/v1/images/1/regions", "search", {}),
        ("POST", "/v1/search?k=2&box=0,0,8,8", "search", {"files": {"file": ("q.png", upload)}}),
        ("PATCH", "/v1/images/1", "ingest", {"json": {"caption": "a cup of coffee"}}),
        ("POST", "/v1/images", "ingest", {"files": {"file": ("new.png", upload)}}),
        ("POST", "/v1/videos", "ingest", {"files": {"file": ("new.mp4", b"not a clip")}}),
        ("GET", "/v1/videos/1", "search", {}),
        ("GET", "/v1/videos/1/file", "search", {}),
        ("GET", "/v1/jobs", "ingest", {}),
        ("GET", "/v1/jobs/1/top-patches.png", "ingest", {}),
        ("GET", "/v1/jobs/1/augmentations.png", "ingest", {}),
        ("GET", "/v1/jobs/1/duplicates?format=csv", "ingest", {}),
        ("POST", "/v1/jobs/1/duplicates/1/keep", "admin", {"json": {"image_id": 1}}),
        ("POST", "/v1/admin/snapshots", "admin", {}),
        ("GET", "/metrics", "admin", {}),
        ("DELETE", "/v1/images/2", "admin", {}),
        ("POST", "/v1/jobs", "admin", {"json": {"kind": "reindex", "space": "nope"}}),
        ("POST", "/v1/jobs", "admin",
         {"json": {"kind": "top-patches", "space": "nope", "layer": 0, "channel": 0}}),
        ("POST", "/v1/jobs", "admin", {"json": {"kind": "text-apply", "model": "nope"}}),
        ("POST", "/v1/jobs", "admin", {"json": {"kind": "detect", "detector": "nope"}}),
        ("POST", "/v1/jobs", "admin",
         {"json": {"kind": "duplicates", "space": "nope", "threshold": 0.9}}),
        ("POST", "/v1/jobs", "admin",
         {"json": {"kind": "text-train", "name": "t", "from_catalog": True,
                   "collection": "nope"}}),
        ("POST", "/v1/jobs", "admin",
         {"json": {"kind": "video-train", "source": "/no-such-clips", "task": "t"}}),
    ]


def _allowed(held: str, needed: str) -> bool:
    return held == needed or held == "admin"


def test_every_route_needs_a_key_with_its_scope(
        keyed: tuple[TestClient, dict[str, str]]) -> None:
    client, secrets = keyed
    upload = imagefactory.png_bytes("coffee", size=(64, 48))
    for method, path, needed, kwargs in _routes(upload):
        bare = client.request(method, path, **kwargs)
        assert bare.status_code == 401, (method, path, bare.text)
        assert bare.headers["www-authenticate"].startswith("Bearer")
        assert bare.json()["error"] == "not_authenticated"
        wrong = client.request(method, path, headers={"Authorization": "Bearer lk_nope"},
                               **kwargs)
        assert wrong.status_code == 401, (method, path)
        for role, secret in secrets.items():
            answer = client.request(method, path, headers={"Authorization": f"Bearer {secret}"},
                                    **kwargs)
            if _allowed(role, needed):
                assert answer.status_code not in (401, 403), (role, method, path, answer.text)
            else:
                assert answer.status_code == 403, (role, method, path, answer.text)
                assert f'scope="{needed}"' in answer.headers["www-authenticate"]


def test_health_and_the_page_stay_open_and_me_tells_the_scopes(
        keyed: tuple[TestClient, dict[str, str]]) -> None:
    client, secrets = keyed
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200
    assert client.get("/").status_code == 200
    assert client.get("/v1/auth/me").status_code == 401
    assert client.get("/v1/auth/me", headers={"Authorization": "Bearer lk_wrong"}).status_code \
        == 401
    me = client.get("/v1/auth/me", headers={"Authorization": f"Bearer {secrets['ingest']}"})
    assert me.json() == {"name": "ingest-key", "scopes": ["ingest"], "authenticated": True,
                         "keys_required": True}
    boss = client.get("/v1/auth/me", headers={"Authorization": f"Bearer {secrets['admin']}"})
    assert boss.json()["scopes"] == list(ROLES)


def test_a_revoked_key_stops_at_once_and_the_secret_is_never_stored(
        keyed: tuple[TestClient, dict[str, str]], photo_home: Runtime) -> None:
    client, secrets = keyed
    headers = {"Authorization": f"Bearer {secrets['search']}"}
    assert client.get("/v1/spaces", headers=headers).status_code == 200
    revoke_api_key(photo_home, name="search-key")
    assert client.get("/v1/spaces", headers=headers).status_code == 401
    with photo_home.read_session() as session:
        stored = {key.name: key.secret_sha256 for key in session.query(ApiKey)}
    assert stored["search-key"] == secret_sha256(secrets["search"])
    assert not any(secret in stored.values() for secret in secrets.values())


def test_an_open_server_still_refuses_a_wrong_key(photo_home: Runtime) -> None:
    with TestClient(create_app(photo_home.settings)) as client:
        assert client.get("/v1/spaces").status_code == 200
        assert client.get("/v1/spaces", headers={"Authorization": "Bearer lk_x"}).status_code \
            == 401
        assert client.get("/v1/auth/me").json()["keys_required"] is False


@pytest.mark.parametrize("order", ["good first", "good last"])
def test_two_authorization_headers_are_refused_whichever_comes_first(
        keyed: tuple[TestClient, dict[str, str]], order: str) -> None:
    """A proxy that checks one header and a server that reads the other must never disagree:
    a request carrying two is refused, even when one of them holds a good key."""
    client, secrets = keyed
    pair = [("authorization", f"Bearer {secrets['admin']}"), ("authorization", "Bearer lk_x")]
    if order == "good last":
        pair.reverse()
    answer = client.get("/v1/spaces", headers=pair)
    assert answer.status_code == 401
    assert "one Authorization header" in answer.json()["detail"]
    alone = client.get("/v1/spaces", headers={"Authorization": f"Bearer {secrets['admin']}"})
    assert alone.status_code == 200


def test_auth_on_without_any_key_refuses_everyone(photo_home: Runtime) -> None:
    settings = photo_home.settings.model_copy(update={"auth": "on"})
    with TestClient(create_app(settings)) as client:
        assert client.get("/v1/spaces").status_code == 401


def test_auth_off_is_open_even_with_keys(photo_home: Runtime) -> None:
    create_api_key(photo_home, name="someone", scopes="search")
    settings = photo_home.settings.model_copy(update={"auth": "off"})
    with TestClient(create_app(settings)) as client:
        assert client.delete("/v1/images/3").status_code == 204


def _admin_client(runtime: Runtime, roots: list[Path]) -> tuple[TestClient, dict[str, str]]:
    secret = create_api_key(runtime, name="root", scopes="admin")[1]
    settings = runtime.settings.model_copy(update={"ingest_roots": roots})
    return TestClient(create_app(settings)), {"Authorization": f"Bearer {secret}"}


def test_server_paths_only_under_the_ingest_roots(photo_home: Runtime, tmp_path: Path) -> None:
    inside = tmp_path / "allowed"
    inside.mkdir()
    (inside / "a.png").write_bytes(imagefactory.png_bytes("coffee", size=(40, 30)))
    outside = tmp_path / "secret"
    outside.mkdir()
    (outside / "b.png").write_bytes(imagefactory.png_bytes("rocket", size=(40, 30)))
    (inside / "link").symlink_to(outside, target_is_directory=True)
    (inside / "list.txt").write_text(f"{outside / 'b.png'}\n")
    client, headers = _admin_client(photo_home, [inside])
    with client:
        def submit(path: Path | str) -> tuple[int, str]:
            answer = client.post("/v1/jobs", headers=headers,
                                 json={"kind": "ingest", "paths": [str(path)]})
            return answer.status_code, answer.text

        assert submit(inside / "a.png")[0] == 202
        refused = [submit(inside / ".." / "secret" / "b.png"), submit(outside / "b.png"),
                   submit(inside / "link" / "b.png"), submit(inside / "link"),
                   submit(inside / "list.txt"), submit("/etc/passwd")]
        assert all(status == 403 for status, _ in refused), refused
        assert all("ingest roots" in text for _, text in refused)
        missing, present = submit(outside / "none.png"), submit(outside / "b.png")
        assert missing[0] == present[0] == 403
        assert missing[1].replace("none.png", "b.png") == present[1]


def test_no_roots_means_no_server_paths_over_http(photo_home: Runtime, photo_dir: Path) -> None:
    client, headers = _admin_client(photo_home, [])
    with client:
        answer = client.post("/v1/jobs", headers=headers,
                             json={"kind": "ingest", "paths": [str(photo_dir)]})
    assert answer.status_code == 403 and "LOOKALIKE_INGEST_ROOTS" in answer.json()["detail"]


def test_keys_command_prints_the_secret_once(tmp_path: Path) -> None:
    env = {**os.environ, "LOOKALIKE_HOME": str(tmp_path / "home")}
    env.pop("LOOKALIKE_DATABASE_URL", None)
    cli = [sys.executable, "-m", "lookalike.services.cli"]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([*cli, *args], env=env, capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, done.stderr
        return done

    run("init")
    created = run("keys", "create", "robot", "--scope", "search,ingest")
    secret = created.stdout.strip()
    assert secret.startswith("lk_") and len(secret) > 40
    listed = run("keys", "list").stdout
    assert "robot" in listed and "search,ingest" in listed and secret not in listed
    run("keys", "revoke", "robot")
    bad = subprocess.run([*cli, "keys", "create", "x", "--scope", "root"], env=env,
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1 and "allowed: search, ingest, admin" in bad.stderr


def test_loopback_hosts_and_a_hidden_database_password(tmp_path: Path) -> None:
    assert all(is_loopback(h) for h in ("127.0.0.1", "localhost", "::1", "[::1]", "127.0.0.2"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "::", "192.168.1.5", "example.org"))
    settings = make_settings(tmp_path, "postgresql+psycopg://app:s3cret@db:5432/lookalike")
    assert "s3cret" not in settings.catalog_url_shown and "app:***@db" in settings.catalog_url_shown


def test_sources_show_no_server_paths_or_url_secrets_without_admin(
        keyed: tuple[TestClient, dict[str, str]]) -> None:
    client, secrets = keyed
    as_role = {role: {"Authorization": f"Bearer {secret}"} for role, secret in secrets.items()}
    hits = client.post("/v1/search?k=3", json={"image_id": 1},
                       headers=as_role["search"]).json()["results"]
    assert all("/" not in hit["source"] for hit in hits), hits
    image = client.get("/v1/images/1", headers=as_role["search"]).json()
    assert "/" not in image["source_uri"]
    full = client.get("/v1/images/1", headers=as_role["admin"]).json()
    assert full["source_uri"].startswith("/") and full["source_uri"].endswith(image["source_uri"])


def test_shown_sources_drop_credentials_queries_and_folders() -> None:
    cases = {
        "https://user:pw@img.example:8443/a/b.jpg?token=s3cret#x": "https://img.example:8443/a/b.jpg",
        "http://img.example/c.png": "http://img.example/c.png",
        "/srv/private/customer-42/photo.jpg": "photo.jpg",
        "upload:../../etc/x.png": "upload:x.png",
    }
    for source, shown in cases.items():
        assert shown_source(source, full=False) == shown
        assert shown_source(source, full=True) == source


def test_admin_actions_leave_an_audit_line(keyed: tuple[TestClient, dict[str, str]],
                                           caplog: pytest.LogCaptureFixture) -> None:
    client, secrets = keyed
    with caplog.at_level(logging.INFO, logger="lookalike.audit"):
        answer = client.delete("/v1/images/4",
                               headers={"Authorization": f"Bearer {secrets['admin']}"})
    assert answer.status_code == 204
    [line] = [json.loads(r.getMessage()) for r in caplog.records if r.name == "lookalike.audit"]
    assert line["key"] == "admin-key" and line["method"] == "DELETE"
    assert line["targets"] == {"image_id": "4"} and line["route"] == "/v1/images/4"
    assert secrets["admin"] not in caplog.text


def test_init_registers_the_deployments_bootstrap_key_once(tmp_path: Path) -> None:
    secret = "lk_" + "b" * 43
    env = {**os.environ, "LOOKALIKE_HOME": str(tmp_path / "home"),
           "LOOKALIKE_BOOTSTRAP_KEY": secret}
    env.pop("LOOKALIKE_DATABASE_URL", None)
    cli = [sys.executable, "-m", "lookalike.services.cli"]
    first = subprocess.run([*cli, "init"], env=env, capture_output=True, text=True, timeout=120)
    again = subprocess.run([*cli, "init"], env=env, capture_output=True, text=True, timeout=120)
    assert "admin key bootstrap-" in first.stdout and "already there" in again.stdout
    listed = subprocess.run([*cli, "keys", "list"], env=env, capture_output=True, text=True,
                            timeout=120).stdout
    assert listed.count("bootstrap-") == 1 and "admin" in listed and secret not in listed
    weak = subprocess.run([*cli, "init"], env={**env, "LOOKALIKE_BOOTSTRAP_KEY": "hunter2"},
                          capture_output=True, text=True, timeout=120)
    assert weak.returncode == 1 and "must start with 'lk_'" in weak.stderr
