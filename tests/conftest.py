"""Shared pytest fixtures."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from sqlalchemy.orm import Session

from lookalike.services.catalog.migrate import upgrade
from lookalike.services.catalog.session import make_engine, make_session_factory


@pytest.fixture(scope="session", autouse=True)
def shared_engine_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """One folder of exported engine models for the whole run (LOOKALIKE_ENGINE_CACHE, which
    server processes inherit): every fresh data folder would otherwise export the backbone
    and check it against torch again. tests/services/spaces/test_engines.py tests the
    export into a data folder itself."""
    previous = os.environ.get("LOOKALIKE_ENGINE_CACHE")
    os.environ["LOOKALIKE_ENGINE_CACHE"] = str(tmp_path_factory.mktemp("engines"))
    yield
    if previous is None:
        os.environ.pop("LOOKALIKE_ENGINE_CACHE")
    else:
        os.environ["LOOKALIKE_ENGINE_CACHE"] = previous


# --- Catalog databases: every catalog test runs on a SQLite file and on real PostgreSQL ---

POSTGRES_ADMIN_URL = os.environ.get(
    "LOOKALIKE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
POSTGRES_START_HINT = (
    "start it with `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start` "
    "(or point LOOKALIKE_TEST_POSTGRES_URL at a server where the user may create databases)"
)


def _postgres_admin() -> psycopg.Connection:
    """An autocommit connection to the PostgreSQL server; fails the test if it is down."""
    try:
        return psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as error:
        pytest.fail(
            f"PostgreSQL at {POSTGRES_ADMIN_URL} is unreachable: {error}\n{POSTGRES_START_HINT}",
            pytrace=False,
        )


def _fresh_postgres_database() -> Iterator[str]:
    """Create a throw-away database, yield its SQLAlchemy URL, drop it (forcibly) after."""
    name = f"lookalike_test_{secrets.token_hex(6)}"
    with _postgres_admin() as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with _postgres_admin() as admin:
            drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
            admin.execute(drop.format(sql.Identifier(name)))


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty catalog database: a SQLite file in tmp_path, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'catalog' / 'catalog.db'}"
    else:
        yield from _fresh_postgres_database()


@pytest.fixture
def migrated_url(database_url: str) -> str:
    """`database_url` migrated to the newest schema."""
    upgrade(database_url)
    return database_url


@pytest.fixture
def session(migrated_url: str) -> Iterator[Session]:
    """A session on the migrated catalog; the test commits what it wants to keep."""
    engine = make_engine(migrated_url)
    with make_session_factory(engine)() as db_session:
        yield db_session
    engine.dispose()


# --- end of catalog database fixtures ---
