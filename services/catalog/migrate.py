"""Run the Alembic migrations programmatically: the only way the catalog schema changes."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext

from lookalike.services.catalog.session import make_engine
from lookalike.services.errors import MigrationsNotFound


def migrations_folder() -> Path:
    """The Alembic environment installed with the package (a wheel carries it too)."""
    try:
        folder = Path(str(resources.files("lookalike.migrations")))
    except ModuleNotFoundError as exc:
        raise MigrationsNotFound(
            "the package lookalike.migrations is not installed; reinstall lookalike "
            "(`pip install .` or `make venv`)") from exc
    if not (folder / "env.py").is_file():
        raise MigrationsNotFound(f"{folder} holds no env.py; reinstall lookalike")
    return folder


def alembic_config(url: str) -> Config:
    """An Alembic config for the installed migrations, aimed at `url`."""
    config = Config()
    config.set_main_option("script_location", str(migrations_folder()))
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
