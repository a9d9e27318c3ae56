"""`lookalike init`: create the catalog or migrate it to the newest schema."""

from __future__ import annotations

from rich.console import Console

from lookalike.services.auth.keys import register_bootstrap_key
from lookalike.services.config import get_settings
from lookalike.services.setup import init_catalog, open_runtime

console = Console()


def init() -> None:
    """Create the catalog, or migrate it to the newest schema."""
    settings = get_settings()
    revision = init_catalog(settings)
    console.print(f"catalog ready at revision {revision}: {settings.catalog_url_shown}",
                  highlight=False)
    if settings.bootstrap_key is not None:
        with open_runtime(settings) as runtime:
            key = register_bootstrap_key(runtime, settings.bootstrap_key.get_secret_value())
        console.print(f"admin key {key.name} registered" if key else "admin key already there")


