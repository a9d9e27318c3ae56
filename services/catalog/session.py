"""Engines and session factories for the catalog (SQLite embedded, PostgreSQL at scale)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, make_url
from sqlalchemy.orm import Session, sessionmaker

from lookalike.services.catalog.storable import refuse_unstorable_parameters


def make_engine(url: str, *, foreign_keys: bool = True) -> Engine:
    """An engine for `url` that refuses text it cannot store (catalog/storable.py); SQLite gets WAL,
    a busy timeout, foreign keys and BEGIN IMMEDIATE.

    `foreign_keys=False` is for migrations only: SQLite batch moves drop and recreate tables,
    and with enforcement on, dropping a parent would cascade into its children.
    """
    parsed = make_url(url)
    if parsed.drivername == "postgresql":
        # psycopg 3 is the driver lookalike ships; SQLAlchemy's bare default is psycopg2.
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() != "sqlite":
        engine = create_engine(parsed, pool_pre_ping=True)
    else:
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed)
        _configure_sqlite(engine, foreign_keys=foreign_keys)
    refuse_unstorable_parameters(engine)
    return engine


def _configure_sqlite(engine: Engine, *, foreign_keys: bool) -> None:
    """Pragmas on every new connection, and BEGIN issued by SQLAlchemy, not the sqlite3 module.

    The sqlite3 module's legacy transaction control emits no BEGIN before SELECT or SAVEPOINT,
    which breaks savepoints and repeatable reads; SQLAlchemy's documented remedy is to turn it
    off and emit BEGIN from the `begin` event. The BEGIN is IMMEDIATE: a transaction that read
    first and writes later would otherwise fail at once with "database is locked" whenever
    another process wrote in between; IMMEDIATE makes it wait (busy_timeout) instead. The cost
    is that SQLite transactions run one at a time; PostgreSQL is the path to more concurrency.
    Read-only sessions (`make_session_factory(..., read_only=True)`) use a plain BEGIN: under
    WAL they neither wait for writers nor hold them up, so searches run beside an ingest.
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA foreign_keys={'ON' if foreign_keys else 'OFF'}")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        read_only = connection.get_execution_options().get("lookalike_read_only", False)
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


def make_session_factory(engine: Engine, *, read_only: bool = False) -> sessionmaker[Session]:
    """Sessions bound to `engine` whose objects stay readable after commit; `read_only`
    sessions are for use cases that never write (searches, lookups)."""
    bind = engine.execution_options(lookalike_read_only=True) if read_only else engine
    return sessionmaker(bind=bind, expire_on_commit=False)
