"""GET /healthz: is the process up and does the catalog answer; GET /readyz: can it serve."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from lookalike.services.api.deps import RuntimeDep
from lookalike.services.index.readiness import check_readiness
from lookalike.services.jobs.broker import broker_problem

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz(runtime: RuntimeDep) -> JSONResponse:
    """200 when the catalog answers; 503 naming the reason when it does not. With a broker
    configured, also whether it answers: when it does not, still 200 (searches are served)
    but status "degraded" and why, since jobs cannot be queued until it is back."""
    try:
        with runtime.session() as session:
            session.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        reason = str(exc.orig if hasattr(exc, "orig") and exc.orig else exc).splitlines()[0]
        return JSONResponse(status_code=503, content={"status": "unavailable",
                                                      "catalog": f"unreachable: {reason}"})
    content = {"status": "ok", "catalog": "ok"}
    if runtime.settings.broker_url:
        problem = broker_problem(runtime.settings.broker_url)
        content["broker"] = "ok" if problem is None else f"unreachable: {problem}"
        content["status"] = "ok" if problem is None else "degraded"
    return JSONResponse(content=content)


@router.get("/readyz")
def readyz(runtime: RuntimeDep) -> JSONResponse:
    """200 when the catalog answers and every space's replica has caught up; 503 otherwise."""
    readiness = check_readiness(runtime)
    return JSONResponse(status_code=200 if readiness.ready else 503,
                        content=readiness.to_public())
