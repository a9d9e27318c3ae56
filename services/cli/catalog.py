"""`lookalike init`: create the catalog or migrate it to the newest schema."""

from __future__ import annotations

from rich.console import Console

from lookalike.services.config import get_settings
from lookalike.services.setup import init_catalog

console = Console()


def init() -> None:
    """Create the catalog, or migrate it to the newest schema."""
    settings = get_settings()
    revision = init_catalog(settings)
    console.print(f"catalog ready at revision {revision}: {settings.catalog_url_shown}",
                  highlight=False)


