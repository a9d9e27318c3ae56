"""/docs: the interactive OpenAPI page, its Swagger UI files served by this process from the
swagger-ui-bundle package (no CDN: the service must work without the internet)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from swagger_ui_bundle import swagger_ui_path

ASSETS_URL = "/docs-assets"
ASSETS_DIR = Path(swagger_ui_path)

router = APIRouter(include_in_schema=False)


@router.get("/docs")
def docs() -> HTMLResponse:
    return get_swagger_ui_html(openapi_url="/openapi.json", title="lookalike API",
                               swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js",
                               swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
                               swagger_favicon_url=f"{ASSETS_URL}/favicon-32x32.png")
