"""Two first ingests at once (a worker's job and an API upload, found by `bench chaos`) both
find no default space; the one that inserts second must take the first's space, not fail
with "space already exists"."""

from __future__ import annotations

import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from lookalike.services.catalog.session import make_engine, make_session_factory
from lookalike.services.setup import init_catalog
from lookalike.services.spaces import lookup
from lookalike.services.spaces.lookup import ensure_default_space
from tests.services.conftest import make_settings


def test_the_second_of_two_first_ingests_takes_the_default_space_the_first_made(
        migrated_url: str, tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "home", migrated_url)
    engines = [make_engine(migrated_url) for _ in range(2)]
    first, second = (make_session_factory(engine)() for engine in engines)
    inserted = threading.Event()

    def second_ingest() -> int:
        inserted.wait(timeout=30)  # the first has inserted the space, not committed it
        with second:
            space = ensure_default_space(session=second, settings=settings)
            second.commit()
            return space.id

    with ThreadPoolExecutor(max_workers=1) as pool:
        with first:
            made = ensure_default_space(session=first, settings=settings)
            made_id = made.id
            later = pool.submit(second_ingest)
            inserted.set()
            # the second now waits on the first's lock (PostgreSQL: the unique name,
            # SQLite: the writer's lock) or reads the committed row
            threading.Event().wait(0.5)
            first.commit()
        assert later.result(timeout=60) == made_id
    for engine in engines:
        engine.dispose()


def test_the_catalog_takes_writes_while_the_first_ingest_checks_its_engine(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The engine check exports and compares a model for seconds; SQLite's write lock must be
    free meanwhile, or every other request is refused as "database is locked"."""
    settings = make_settings(tmp_path / "home")
    init_catalog(settings)
    choose = lookup.default_engine
    lock_free: list[bool] = []

    def checked(**kwargs: object) -> str:
        other = sqlite3.connect(str(settings.layout.catalog_db), timeout=0,
                                isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            other.execute("ROLLBACK")
            lock_free.append(True)
        except sqlite3.OperationalError:
            lock_free.append(False)
        finally:
            other.close()
        return choose(**kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(lookup, "default_engine", checked)
    engine = make_engine(settings.catalog_url)
    with make_session_factory(engine)() as session:
        space = lookup.ensure_default_space(session=session, settings=settings)
        session.commit()
    engine.dispose()
    assert lock_free == [True] and space.is_default
