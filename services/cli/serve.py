"""`lookalike serve`: the HTTP API and the web page, loaded by uvicorn from its import string."""

from __future__ import annotations

import ipaddress
import os
from typing import Annotated, Any

import typer
from rich.console import Console

from lookalike.services.cli.listeners import serve_workers
from lookalike.services.config import get_settings

APP = "lookalike.services.api.app:create_app"

errors = Console(stderr=True)


def is_loopback(host: str) -> bool:
    """Whether `host` (an address or a name) only listens on this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def serve(
    host: Annotated[str, typer.Option(help="address to listen on; beyond loopback, API keys "
                                           "are required unless LOOKALIKE_AUTH=off")] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8000,
    workers: Annotated[int | None, typer.Option(
        min=1, max=64, help="server processes sharing the port, each with its own model and "
        "index replica (kept in step through the catalog) and its own socket (SO_REUSEPORT: "
        "new connections spread over them); one per core serves the most uploads; "
        "default: LOOKALIKE_SERVE_WORKERS (1)")] = None,
) -> None:
    """Serve the HTTP API (OpenAPI docs at /docs), on uvloop with the httptools parser."""
    import uvicorn  # noqa: PLC0415 - only this command needs the server

    if not is_loopback(host) and get_settings().auth == "auto":
        os.environ["LOOKALIKE_AUTH"] = "on"
        get_settings.cache_clear()
        errors.print(f"listening on {host}: every request needs an API key (`lookalike keys "
                     "create`); LOOKALIKE_AUTH=off opts out", highlight=False)
    options: dict[str, Any] = {"factory": True, "loop": "uvloop", "http": "httptools",
                               "log_level": "info", "server_header": False}
    processes = workers or get_settings().serve_workers
    if processes == 1:
        uvicorn.run(APP, host=host, port=port, **options)
    else:
        serve_workers(APP, host=host, port=port, workers=processes, **options)
