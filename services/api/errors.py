"""The one place where library and service errors become HTTP statuses and JSON bodies."""

from __future__ import annotations

import logging
from functools import partial
from http import HTTPStatus
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from kombu.exceptions import OperationalError as BrokerError
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException
from starlette.responses import Response

from lookalike.retrieval.errors import (
    CheckpointMismatch,
    CocoFormatError,
    EngineUnavailable,
    EvaluationError,
    GroundTruthMalformed,
    GroundTruthNotFound,
    HeadNotFound,
    ImageRejected,
    IndexCorrupt,
    IndexIdNotFound,
    IndexNotTrained,
    IndexTrainingError,
    InvalidBox,
    InvalidIndexFactory,
    InvalidSearchParameter,
    InvalidTrainingConfig,
    InvalidTransformParameter,
    LookalikeError,
    UnknownBackbone,
    UnknownPooling,
    UnknownProtocol,
    UnknownTransform,
    VideoRejected,
    WeightsMismatch,
    WeightsNotFound,
    WhiteningError,
)
from lookalike.services.errors import (
    Busy,
    CallSizeUnreadable,
    CatalogEmpty,
    CatalogNotReady,
    FetchFailed,
    FetchRefused,
    InvalidRequest,
    JobStateConflict,
    MigrationsNotFound,
    NotAllowed,
    NotAuthenticated,
    NotCalibrated,
    NotFound,
    RateLimited,
    SpaceConflict,
    TextTooLong,
    VectorSizeMismatch,
)

log = logging.getLogger(__name__)

REJECTION_STATUS = {
    "too_many_bytes": 413,
    "too_many_pixels": 413,
    "not_an_image": 415,
    "unsupported_format": 415,
    "too_long": 413,
    "too_many_frames": 413,
    "not_a_video": 415,
}


def error_body(status: int, error: str, detail: str) -> JSONResponse:
    return JSONResponse(status_code=status, content={"error": error, "detail": detail})


# Each kind of error and its status, the first match wins (a subclass before its base).
# 4xx: the request can be changed to succeed; 503: the server's catalog, files or index need
# an operator (or a moment) first. Errors absent here are bugs: 500 "internal".
STATUSES: list[tuple[type[LookalikeError], int, str]] = [
    (NotAuthenticated, 401, "not_authenticated"),
    (NotAllowed, 403, "forbidden"),
    (RateLimited, 429, "rate_limited"),
    (Busy, 503, "busy"),
    (NotFound, 404, "not_found"),
    (IndexIdNotFound, 404, "not_found"),
    (GroundTruthNotFound, 404, "ground_truth_not_found"),
    (JobStateConflict, 409, "job_state_conflict"),
    (CatalogEmpty, 409, "catalog_empty"),
    (SpaceConflict, 409, "space_conflict"),
    (NotCalibrated, 409, "not_calibrated"),
    (IndexNotTrained, 409, "index_not_trained"),
    (IndexTrainingError, 409, "index_training_failed"),
    (TextTooLong, 413, "text_too_long"),
    (InvalidRequest, 422, "invalid_request"),
    (FetchRefused, 422, "fetch_refused"),
    (FetchFailed, 502, "fetch_failed"),
    (UnknownBackbone, 422, "unknown_backbone"),
    (EngineUnavailable, 422, "engine_unavailable"),
    (UnknownPooling, 422, "unknown_pooling"),
    (InvalidIndexFactory, 422, "invalid_index_factory"),
    (InvalidSearchParameter, 422, "invalid_search_parameter"),
    (UnknownTransform, 422, "unknown_transform"),
    (InvalidTransformParameter, 422, "invalid_transform_parameter"),
    (InvalidTrainingConfig, 422, "invalid_training_config"),
    (UnknownProtocol, 422, "unknown_protocol"),
    (GroundTruthMalformed, 422, "ground_truth_malformed"),
    (EvaluationError, 422, "invalid_evaluation"),
    (InvalidBox, 422, "invalid_box"),
    (CocoFormatError, 422, "invalid_coco"),
    (CheckpointMismatch, 409, "checkpoint_mismatch"),
    (HeadNotFound, 503, "weights_not_found"),
    (WeightsNotFound, 503, "weights_not_found"),
    (WeightsMismatch, 503, "weights_mismatch"),
    (WhiteningError, 503, "whitening_unusable"),
    (CallSizeUnreadable, 503, "call_size_unreadable"),
    (VectorSizeMismatch, 503, "vector_size_mismatch"),
    (IndexCorrupt, 503, "index_corrupt"),
    (CatalogNotReady, 503, "catalog_not_ready"),
    (MigrationsNotFound, 503, "migrations_not_found"),
]


def _status_of(exc: LookalikeError) -> tuple[int, str]:
    if isinstance(exc, ImageRejected | VideoRejected):
        return REJECTION_STATUS.get(exc.kind, 422), exc.kind
    for kind, status, name in STATUSES:
        if isinstance(exc, kind):
            return status, name
    return 500, "internal"


async def _lookalike_error(_: Request, exc: Exception, *, home: Path) -> JSONResponse:
    assert isinstance(exc, LookalikeError)
    status, name = _status_of(exc)
    if status >= 500:
        log.error("request failed: %s", exc)
    response = error_body(status, name, without_home(str(exc), home))
    response.headers.update(_challenge(exc))
    return response


def without_home(detail: str, home: Path) -> str:
    """`detail` with the server's home folder written `$LOOKALIKE_HOME`: the messages name
    files for the operator (a missing detector, a lost original), and a client has no use for
    where the server keeps them, nor should it learn the machine's layout."""
    return detail.replace(str(home), "$LOOKALIKE_HOME")


def _challenge(exc: LookalikeError) -> dict[str, str]:
    """RFC 6750's WWW-Authenticate for 401 and 403-by-scope, Retry-After for 429."""
    if isinstance(exc, NotAuthenticated):
        return {"WWW-Authenticate": 'Bearer realm="lookalike"'}
    if isinstance(exc, NotAllowed) and exc.scope is not None:
        return {"WWW-Authenticate": f'Bearer realm="lookalike", error="insufficient_scope", '
                                    f'scope="{exc.scope}"'}
    if isinstance(exc, RateLimited):
        return {"Retry-After": str(exc.retry_after_s)}
    if isinstance(exc, Busy):
        return {"Retry-After": "5"}
    return {}


async def _database_down(_: Request, exc: Exception) -> JSONResponse:
    log.error("catalog unreachable: %s", exc)
    return error_body(503, "catalog_unavailable",
                      "the catalog database is unreachable; retry shortly")


async def _broker_down(_: Request, exc: Exception) -> JSONResponse:
    log.error("job broker unreachable: %s", exc)
    return error_body(503, "broker_unavailable",
                      f"the job broker is unreachable ({exc}); jobs cannot be queued until it "
                      "answers again (GET /healthz shows it); searches are not affected")


async def _invalid_request(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = "; ".join(
        f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}"
        for error in exc.errors())
    return error_body(422, "invalid_request", problems)


async def _http_error(request: Request, exc: Exception) -> Response:
    """Starlette's and FastAPI's own refusals (no such path, a method the path does not
    take, a body their parsers cannot read) in the body every other error has, named for
    their status (not_found, method_not_allowed, bad_request), their headers (Allow) kept;
    a bare "Not Found" or "Method Not Allowed" says what to do instead."""
    assert isinstance(exc, HTTPException)
    if exc.status_code in (204, 304):  # no body allowed
        return Response(status_code=exc.status_code, headers=exc.headers)
    status = HTTPStatus(exc.status_code)
    detail = str(exc.detail)
    if detail == status.phrase and status == HTTPStatus.NOT_FOUND:
        detail = f"no such path: {request.url.path} (GET /docs lists the API's paths)"
    elif detail == status.phrase and status == HTTPStatus.METHOD_NOT_ALLOWED:
        allowed = (exc.headers or {}).get("Allow", "")
        detail = f"{request.method} is not allowed on {request.url.path}; allowed: {allowed}"
    name = status.phrase.lower().replace(" ", "_").replace("-", "_")
    response = error_body(exc.status_code, name, detail)
    response.headers.update(exc.headers or {})
    return response


def install_error_handlers(app: FastAPI, *, home: Path) -> None:
    """The handlers of every error a route may raise; `home` is the server's home folder,
    which error details never show."""
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(LookalikeError, partial(_lookalike_error, home=home))
    app.add_exception_handler(OperationalError, _database_down)
    app.add_exception_handler(BrokerError, _broker_down)
