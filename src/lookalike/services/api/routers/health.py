"""GET /healthz: is the process up and does the catalog answer; GET /readyz: can it serve."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from lookalike.services.api.deps import RuntimeDep
from lookalike.services.readiness import check_readiness

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz(runtime: RuntimeDep) -> JSONResponse:
    """200 when the catalog answers; 503 naming the reason when it does not."""
    try:
        with runtime.session() as session:
            session.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        reason = str(exc.orig if hasattr(exc, "orig") and exc.orig else exc).splitlines()[0]
        return JSONResponse(status_code=503, content={"status": "unavailable",
                                                      "catalog": f"unreachable: {reason}"})
    return JSONResponse(content={"status": "ok", "catalog": "ok"})


@router.get("/readyz")
def readyz(runtime: RuntimeDep) -> JSONResponse:
    """200 when the catalog answers and every space's replica has caught up; 503 otherwise."""
    readiness = check_readiness(runtime)
    return JSONResponse(status_code=200 if readiness.ready else 503,
                        content=readiness.to_public())
