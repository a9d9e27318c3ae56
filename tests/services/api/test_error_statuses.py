"""Every error the library and the services raise answers with its own status and a JSON body:
only the errors listed here as bugs (with the reason no request can cause them) fall back to
500 "internal"."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient

import lookalike.retrieval.errors as library_errors
import lookalike.services.errors as service_errors
from lookalike.retrieval.errors import (
    ArrayShapeError,
    CheckpointCorrupt,
    ImageRejected,
    IndexReadOnly,
    IndexShapeError,
    LookalikeError,
    TrainingStopped,
    VideoRejected,
    WeightsNotFound,
)
from lookalike.services.api.errors import install_error_handlers
from lookalike.services.errors import BackupError, BenchFailed, RateLimited

INTERNAL: dict[type[LookalikeError], str] = {
    IndexShapeError: "vectors and ids reach an index only from the catalog and the embedder, "
                     "already checked: a wrong shape there is a bug",
    IndexReadOnly: "only the replica writes to an index, and never to a mapped base",
    ArrayShapeError: "the service code shapes these arrays; no request gives them",
    TrainingStopped: "the job runner catches it (a cancelled job); it never leaves a job",
    CheckpointCorrupt: "a job's own checkpoint: raised in a job's batch and recorded as the "
                       "job's error, never in a request",
    BenchFailed: "the bench commands run from the CLI; no route starts one",
    BackupError: "backup and restore run from the CLI; no route starts one",
}

# Errors whose constructor takes more than a message.
SAMPLES: dict[type[LookalikeError], Callable[[type], LookalikeError]] = {
    ImageRejected: lambda kind: kind("decode_failed", "bytes that are no image"),
    VideoRejected: lambda kind: kind("truncated", "a stream cut short"),
    WeightsNotFound: lambda kind: kind("lenet5", ["/nowhere/lenet5.pt"]),
    RateLimited: lambda kind: kind("too many searches", retry_after_s=3),
}


def every_error() -> list[type[LookalikeError]]:
    """Every subclass of LookalikeError that lookalike defines, subclasses of subclasses too."""
    assert library_errors.LookalikeError is service_errors.LookalikeError
    found: set[type[LookalikeError]] = set()
    todo = [LookalikeError]
    while todo:
        for kind in todo.pop().__subclasses__():
            if kind not in found and kind.__module__.startswith("lookalike."):
                found.add(kind)
                todo.append(kind)
    return sorted(found, key=lambda kind: kind.__name__)


def sample(kind: type[LookalikeError]) -> LookalikeError:
    for base, make in SAMPLES.items():
        if issubclass(kind, base):
            return make(kind)
    return kind(f"a {kind.__name__} for the test")


@pytest.fixture(scope="module")
def client() -> TestClient:
    """An app with the error handlers and one route that raises the error it is named."""
    app = FastAPI()
    install_error_handlers(app, home=Path("/srv/lookalike"))
    kinds = {kind.__name__: kind for kind in every_error()}

    @app.get("/raise/{name}")
    def raise_error(name: str) -> None:
        raise sample(kinds[name])

    @app.post("/form")
    async def read_form(request: Request) -> None:
        await request.form()

    return TestClient(app, raise_server_exceptions=False)


def test_the_walk_finds_both_modules_errors_and_the_internal_list_is_current() -> None:
    found = set(every_error())
    assert {library_errors.IndexCorrupt, service_errors.VectorSizeMismatch} <= found
    assert set(INTERNAL) <= found
    assert all(reason for reason in INTERNAL.values())


@pytest.mark.parametrize("kind", every_error(), ids=lambda kind: kind.__name__)
def test_each_error_answers_with_its_own_status_and_a_json_body(
        client: TestClient, kind: type[LookalikeError]) -> None:
    answer = client.get(f"/raise/{kind.__name__}")
    body = answer.json()
    assert set(body) == {"error", "detail"} and body["detail"], body
    if kind in INTERNAL:
        assert (answer.status_code, body["error"]) == (500, "internal"), (
            f"{kind.__name__} is mapped now: take it out of INTERNAL")
    else:
        assert answer.status_code != 500 and body["error"] != "internal", (
            f"{kind.__name__} falls back to 500: map it in services/api/errors.py or list it "
            "in INTERNAL with the reason no request can raise it")
        assert 400 <= answer.status_code < 600


def test_the_frameworks_own_refusals_answer_in_the_same_body(client: TestClient) -> None:
    """No such path, a method the path does not take (Allow kept), a multipart body without
    its boundary: each in the body every other error has, named for its status."""
    missing = client.get("/no/such/path")
    assert (missing.status_code, missing.json()) == (404, {
        "error": "not_found", "detail": "no such path: /no/such/path (GET /docs lists the "
                                        "API's paths)"})
    wrong = client.delete("/raise/NotFound")
    assert (wrong.status_code, wrong.json()) == (405, {
        "error": "method_not_allowed",
        "detail": "DELETE is not allowed on /raise/NotFound; allowed: GET"})
    assert wrong.headers["allow"] == "GET"
    unbounded = client.post("/form", content=b"--x--",
                            headers={"content-type": "multipart/form-data"})
    assert (unbounded.status_code, unbounded.json()["error"]) == (400, "bad_request")
    assert "boundary" in unbounded.json()["detail"]
