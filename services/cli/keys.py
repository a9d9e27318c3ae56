"""`lookalike keys create|list|revoke`: API keys, their secret printed once."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from lookalike.services.auth.keys import create_api_key, list_api_keys, revoke_api_key
from lookalike.services.config import get_settings
from lookalike.services.setup import open_runtime

console = Console()
errors = Console(stderr=True)


def keys_create(
    name: Annotated[str, typer.Argument(help="who or what uses the key, e.g. web-frontend")],
    scope: Annotated[str, typer.Option(help="comma-separated: search, ingest, admin")] = "search",
) -> None:
    """Create an API key and print its secret once (only its sha256 is kept)."""
    with open_runtime(get_settings()) as runtime:
        key, secret = create_api_key(runtime, name=name, scopes=scope)
    errors.print(f"key {key.name!r} with scopes {key.scopes}; keep the secret below, it is not "
                 "shown again. Send it as 'Authorization: Bearer <secret>'.", highlight=False)
    print(secret)


def keys_list() -> None:
    """Every key: name, scopes, created, revoked (never the secret)."""
    with open_runtime(get_settings()) as runtime:
        keys = list_api_keys(runtime)
    table = Table("name", "scopes", "created", "revoked")
    for key in keys:
        table.add_row(key.name, key.scopes, key.created_at.isoformat(timespec="seconds"),
                      key.revoked_at.isoformat(timespec="seconds") if key.revoked_at else "")
    console.print(table)


def keys_revoke(name: Annotated[str, typer.Argument(help="the key's name")]) -> None:
    """Revoke a key: it stops authenticating at once, in every API process."""
    with open_runtime(get_settings()) as runtime:
        key = revoke_api_key(runtime, name=name)
    console.print(f"key {key.name!r} revoked")
