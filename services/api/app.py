"""The FastAPI application factory: the runtime is built in the lifespan, never at import."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool
from fastapi.middleware.cors import CORSMiddleware
from fastapi.staticfiles import StaticFiles

from lookalike.services.api.errors import install_error_handlers
from lookalike.services.api.guards import HostAndOrigin, SecurityHeaders
from lookalike.services.api.leansearch import LeanSearch
from lookalike.services.api.limits import BodyLimit
from lookalike.services.api.logs import configure_logging
from lookalike.services.api.metrics import Metrics
from lookalike.services.api.ranges import IgnoreBadRanges
from lookalike.services.api.ratelimit import Budgets
from lookalike.services.api.requests import RequestContext
from lookalike.services.api.routers import (
    admin,
    copies,
    detect,
    docs,
    explain,
    health,
    identity,
    images,
    jobs,
    metrics,
    pages,
    search,
    spaces,
    text,
    videos,
)
from lookalike.services.config import Settings, get_settings
from lookalike.services.jobs.runner import resume_interrupted
from lookalike.services.setup import open_runtime, warm_up

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> FastAPI:
    """An app serving the catalog that `settings` (or the environment) points at."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(settings.log_format)
        if settings.auth == "off":
            log.warning("authentication is off (LOOKALIKE_AUTH=off): anyone who can reach this "
                        "port may search, ingest, delete and administer")
        app.state.runtime = open_runtime(settings)
        await run_in_threadpool(warm_up, app.state.runtime)
        await run_in_threadpool(resume_interrupted, app.state.runtime)
        app.state.metrics.watch_catalog(app.state.runtime)
        try:
            yield
        finally:
            app.state.runtime.close()

    app = FastAPI(title="lookalike", version="0.1.0", lifespan=lifespan,
                  description="Search a collection of images by example.",
                  docs_url=None, redoc_url=None)
    app.state.metrics = Metrics()
    app.state.budgets = Budgets.from_settings(settings)
    app.add_middleware(BodyLimit, max_bytes=settings.max_upload_bytes,
                       max_json_bytes=settings.max_json_bytes,
                       path_caps={"/v1/videos": (settings.max_video_bytes,
                                                 "LOOKALIKE_MAX_VIDEO_BYTES")})
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins,
                           allow_methods=["GET", "POST", "DELETE"],
                           allow_headers=["Authorization", "Content-Type"])
    app.add_middleware(HostAndOrigin, hosts=settings.allowed_hosts,
                       cors_origins=settings.cors_origins)
    app.add_middleware(SecurityHeaders)
    app.add_middleware(IgnoreBadRanges)
    app.add_middleware(RequestContext, metrics=app.state.metrics)
    install_error_handlers(app, home=settings.layout.home)
    for module in (search, copies, images, spaces, jobs, explain, health, metrics, pages, admin,
                   identity, text, docs, videos, detect):
        app.include_router(module.router)
    app.router.routes.insert(0, LeanSearch(app.router))
    app.mount("/static", StaticFiles(directory=pages.STATIC_DIR), name="static")
    app.mount(docs.ASSETS_URL, StaticFiles(directory=docs.ASSETS_DIR), name="docs-assets")
    return app
