"""GET /healthz: is the process up and does the catalog answer."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from lookalike.services.api.deps import RuntimeDep

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
