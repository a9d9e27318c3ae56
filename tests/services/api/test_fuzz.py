"""The API fuzzed from its own OpenAPI document (schemathesis, bounded examples): no answer is
a server error, and every documented answer matches its schema. Name lookups are refused in
this process, since search by URL must never reach the internet from a test."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

from lookalike.services.api.app import create_app
from lookalike.services.auth.keys import create_api_key
from lookalike.services.setup import init_catalog, open_runtime
from tests.services.conftest import ingest_into, make_settings

pytestmark = pytest.mark.slow

EXAMPLES = 20
CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance]


def _no_lookups(*_: object, **__: object) -> list[object]:
    raise socket.gaierror(socket.EAI_NONAME, "name lookups are off in the fuzz test")


def test_no_server_errors_and_every_answer_matches_its_schema(
        tmp_path: Path, photo_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keys are required and the fuzzer's key holds search and ingest: admin routes answer
    403 instead of starting training jobs or emptying the catalog under the fuzzer."""
    settings_ = make_settings(tmp_path / "home")
    init_catalog(settings_)
    with open_runtime(settings_) as runtime:
        ingest_into(runtime, photo_dir)
        secret = create_api_key(runtime, name="fuzzer", scopes="search,ingest")[1]
    monkeypatch.setattr(socket, "getaddrinfo", _no_lookups)
    app = create_app(settings_)
    headers = {"Authorization": f"Bearer {secret}"}
    with TestClient(app):  # runs the lifespan: the runtime the routes use
        schema = schemathesis.openapi.from_asgi("/openapi.json", app)
        operations = [result.ok() for result in schema.get_all_operations()]
        assert len(operations) >= 15
        for operation in operations:
            _fuzz(operation, headers)


def _fuzz(operation: schemathesis.APIOperation, headers: dict[str, str]) -> None:
    @given(case=operation.as_strategy())
    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    def check(case: schemathesis.Case) -> None:
        case.call_and_validate(headers=headers, checks=CHECKS)

    check()
