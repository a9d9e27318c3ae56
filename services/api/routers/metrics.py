"""GET /metrics: this process's figures in the Prometheus text format."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response
from fastapi.concurrency import run_in_threadpool
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from lookalike.services.api.auth import current_identity
from lookalike.services.api.deps import RuntimeDep
from lookalike.services.auth.scopes import ADMIN, grants
from lookalike.services.errors import NotAllowed

router = APIRouter(tags=["operations"])


async def _admin_unless_open(request: Request, runtime: RuntimeDep) -> None:
    """/metrics needs the admin scope, unless LOOKALIKE_METRICS_OPEN lets a scraper in."""
    if runtime.settings.metrics_open:
        return
    who = await current_identity(request, runtime)
    if not grants(who.scopes, ADMIN):
        raise NotAllowed(f"the key {who.name!r} lacks the 'admin' scope /metrics needs "
                         "(or set LOOKALIKE_METRICS_OPEN=true)", scope=ADMIN)


@router.get("/metrics", response_class=Response, dependencies=[Depends(_admin_unless_open)])
async def metrics(request: Request) -> Response:
    """Request latency per route, searches, uploads, errors, catalog and replica gauges."""
    body = await run_in_threadpool(generate_latest, request.app.state.metrics.registry)
    return Response(content=body, media_type=CONTENT_TYPE_LATEST)
