"""Alembic environment: migrates the catalog whose URL the caller gives.

The URL comes from, first wins: `config.attributes["url"]` (lookalike.services.catalog.migrate),
`alembic -x url=...`, then the LOOKALIKE_DATABASE_URL environment variable.
"""

from __future__ import annotations

import os
from logging.config import fileConfig
from typing import Any

from alembic import context
from alembic.autogenerate.api import AutogenContext
from sqlalchemy import make_url

from lookalike.services.catalog.fulltext import managed_by_models
from lookalike.services.catalog.models import Base, UTCDateTime
from lookalike.services.catalog.session import make_engine

config = context.config
target_metadata = Base.metadata


def database_url() -> str:
    """The URL to migrate, by the precedence in the module docstring."""
    url = config.attributes.get("url") or context.get_x_argument(as_dictionary=True).get("url")
    url = url or os.environ.get("LOOKALIKE_DATABASE_URL")
    if not url:
        raise RuntimeError(
            "no database URL: pass `alembic -x url=sqlite:///path/catalog.db` "
            "or set LOOKALIKE_DATABASE_URL"
        )
    return url


def render_item(type_: str, obj: Any, autogen_context: AutogenContext) -> str | bool:
    """Render the models' own column types as plain SQLAlchemy types in revision files."""
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def configure_options(url: str) -> dict[str, Any]:
    """Options shared by online and offline runs; SQLite alters tables by batch copy."""
    return {
        "target_metadata": target_metadata,
        "render_as_batch": make_url(url).get_backend_name() == "sqlite",
        "render_item": render_item,
        "compare_type": True,
        "transactional_ddl": True,
        "include_object": managed_by_models,
    }


def run_offline(url: str) -> None:
    """Emit the migration SQL without a connection (`alembic upgrade head --sql`)."""
    context.configure(url=url, literal_binds=True, **configure_options(url))
    with context.begin_transaction():
        context.run_migrations()


def run_online(url: str) -> None:
    """Run the migrations on a live connection, in one transaction."""
    engine = make_engine(url, foreign_keys=False)
    try:
        with engine.connect() as connection:
            context.configure(connection=connection, **configure_options(url))
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if config.config_file_name is not None and config.attributes.get("configure_logging", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

if context.is_offline_mode():
    run_offline(database_url())
else:
    run_online(database_url())
