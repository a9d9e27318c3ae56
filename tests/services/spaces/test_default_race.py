"""Two first ingests at once (a worker's job and an API upload, found by `bench chaos`) both
find no default space; the one that inserts second must take the first's space, not fail
with "space already exists"."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from lookalike.services.catalog.session import make_engine, make_session_factory
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
