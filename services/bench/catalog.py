"""Throw-away catalogs for benchmarks: a temp home with SQLite, or a new database on a
PostgreSQL server, created for one run and dropped after it (never an existing one)."""

from __future__ import annotations

import logging
import secrets
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from psycopg import sql
from sqlalchemy import make_url
from sqlalchemy.engine import URL
from sqlalchemy.exc import ArgumentError

from lookalike.services.config import Settings
from lookalike.services.errors import InvalidRequest
from lookalike.services.ingest.pipeline import IngestSummary, ingest_items
from lookalike.services.ingest.sources import collect_items
from lookalike.services.sample import build_sample
from lookalike.services.setup import init_catalog, open_runtime

log = logging.getLogger(__name__)

DATABASE_PREFIX = "lookalike_bench_"


def _server_url(admin_url: str) -> URL:
    """The PostgreSQL server URL, checked; a clear error for anything else."""
    try:
        url = make_url(admin_url)
    except ArgumentError as exc:
        raise InvalidRequest(f"--postgres {admin_url!r} is not a database URL; expected e.g. "
                             "postgresql://postgres@127.0.0.1:5432/postgres") from exc
    if url.get_backend_name() != "postgresql":
        raise InvalidRequest(f"--postgres needs a postgresql:// URL; got {url.drivername}://")
    return url


def _admin(url: URL) -> psycopg.Connection:
    """An autocommit connection (CREATE/DROP DATABASE cannot run inside a transaction)."""
    conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
    return psycopg.connect(conninfo, autocommit=True, connect_timeout=10)


@contextmanager
def throwaway_database(admin_url: str) -> Iterator[str]:
    """Create a new `lookalike_bench_<random>` database on the server `admin_url` points at,
    yield its URL, and drop it afterwards (with FORCE: a killed server may hold connections)."""
    url = _server_url(admin_url)
    name = f"{DATABASE_PREFIX}{secrets.token_hex(6)}"
    with _admin(url) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    log.info("created throw-away database %s", name)
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with _admin(url) as admin:
            drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
            admin.execute(drop.format(sql.Identifier(name)))
        log.info("dropped throw-away database %s", name)


@contextmanager
def throwaway_catalog(settings: Settings, *, postgres: str | None) -> Iterator[Settings]:
    """`settings` for a new, migrated, empty catalog in a temp home: SQLite there, or a
    throw-away database on the PostgreSQL server `postgres`; both removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="lookalike-bench-") as tmp:
        home = Path(tmp) / "home"
        if postgres is None:
            bench = settings.model_copy(update={"home": home, "database_url": None})
            init_catalog(bench)
            yield bench
            return
        with throwaway_database(postgres) as database_url:
            bench = settings.model_copy(update={"home": home, "database_url": database_url})
            init_catalog(bench)
            yield bench


def seed_sample(settings: Settings, *, fashion_per_class: int) -> IngestSummary:
    """Ingest the sample collection (bundled photos + Fashion-MNIST images per class)."""
    with tempfile.TemporaryDirectory(prefix="lookalike-seed-") as tmp:
        build_sample(Path(tmp), fashion_per_class=fashion_per_class)
        with open_runtime(settings) as runtime:
            return ingest_items(runtime, collect_items([Path(tmp)], label_from_dir=True))
