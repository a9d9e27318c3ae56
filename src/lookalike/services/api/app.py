"""The FastAPI application factory: the runtime is built in the lifespan, never at import."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from lookalike.services.api.errors import install_error_handlers
from lookalike.services.api.limits import BodyLimit
from lookalike.services.api.routers import health, images, search, spaces
from lookalike.services.config import Settings, get_settings
from lookalike.services.setup import open_runtime


def create_app(settings: Settings | None = None) -> FastAPI:
    """An app serving the catalog that `settings` (or the environment) points at."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.runtime = open_runtime(settings)
        try:
            yield
        finally:
            app.state.runtime.close()

    app = FastAPI(title="lookalike", version="0.1.0", lifespan=lifespan,
                  description="Search a collection of images by example.")
    app.add_middleware(BodyLimit, max_bytes=settings.max_upload_bytes)
    install_error_handlers(app)
    for router in (search.router, images.router, spaces.router, health.router):
        app.include_router(router)
    return app
