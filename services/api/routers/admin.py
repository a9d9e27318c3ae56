"""POST /v1/admin/snapshots: this process writes its index replicas as new snapshots."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter

from lookalike.services.api.auth import NEEDS_ADMIN
from lookalike.services.api.deps import RuntimeDep
from lookalike.services.api.ratelimit import ADMIN_RATE
from lookalike.services.api.schemas import ErrorResponse
from lookalike.services.index.snapshots import snapshot_all

router = APIRouter(prefix="/v1/admin", tags=["admin"], dependencies=[NEEDS_ADMIN, ADMIN_RATE])


@router.post("/snapshots", status_code=201, responses={404: {"model": ErrorResponse}})
def write_snapshots(runtime: RuntimeDep, space: str | None = None) -> list[dict]:
    """Catch each space's replica (or the named one) up with the catalog and write it as a
    new snapshot (temp file, fsync, rename), so that a restart loads it instead of
    replaying the change log; searches on that space wait while it is written."""
    return [asdict(report) for report in snapshot_all(runtime, space_name=space)]
