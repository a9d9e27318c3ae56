"""GET /metrics: this process's figures in the Prometheus text format."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

router = APIRouter(tags=["operations"])


@router.get("/metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    """Request latency per route, searches, uploads, errors, catalog and replica gauges."""
    body = await run_in_threadpool(generate_latest, request.app.state.metrics.registry)
    return Response(content=body, media_type=CONTENT_TYPE_LATEST)
