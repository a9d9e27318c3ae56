"""Run the Alembic migrations programmatically: the only way the catalog schema changes."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext

from lookalike.services.catalog.errors import MigrationsNotFound
from lookalike.services.catalog.session import make_engine


def find_alembic_ini(start: Path | None = None) -> Path:
    """The alembic.ini of the repository holding this package, searched upward from `start`."""
    here = (start or Path(__file__)).resolve()
    for folder in (here, *here.parents):
        candidate = folder / "alembic.ini"
        if candidate.is_file():
            return candidate
    raise MigrationsNotFound(
        f"no alembic.ini in {here} or any folder above it; the catalog migrations ship with "
        "the repository: install lookalike editable (`pip install -e .`) from a checkout"
    )


def alembic_config(url: str) -> Config:
    """An Alembic config for the repository's migrations, aimed at `url`."""
    config = Config(str(find_alembic_ini()))
    config.attributes["url"] = url
    config.attributes["configure_logging"] = False
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Migrate the catalog at `url` up to `revision`."""
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    """Migrate the catalog at `url` down to `revision` ("base" removes every table)."""
    command.downgrade(alembic_config(url), revision)


def current_revision(url: str) -> str | None:
    """The revision the catalog at `url` is at; None for an empty database."""
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()
