"""`lookalike serve`: the HTTP API and the web page, loaded by uvicorn from its import string."""

from __future__ import annotations

from typing import Annotated

import typer


def serve(
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8000,
) -> None:
    """Serve the HTTP API (OpenAPI docs at /docs)."""
    import uvicorn  # noqa: PLC0415 - only this command needs the server

    uvicorn.run("lookalike.services.api.app:create_app", factory=True, host=host, port=port,
                log_level="info")


