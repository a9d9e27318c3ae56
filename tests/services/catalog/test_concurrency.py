"""Writers on separate connections at once: no lost default, no deadlock, a replayable log."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from lookalike.services.catalog.embeddings import add_embeddings, changes_since
from lookalike.services.catalog.images import mark_image_deleted
from lookalike.services.catalog.models import Embedding
from lookalike.services.catalog.session import make_engine, make_session_factory
from lookalike.services.catalog.spaces import list_spaces, set_default_space
from tests.services.catalog.builders import add_images, space, vectors


@pytest.fixture
def sessions(migrated_url: str) -> Iterator[Callable[[], sessionmaker[Session]]]:
    """A maker of session factories, each on its own engine (its own connections)."""
    engines = []

    def factory() -> sessionmaker[Session]:
        engines.append(make_engine(migrated_url))
        return make_session_factory(engines[-1])

    yield factory
    for engine in engines:
        engine.dispose()


def test_concurrent_default_switches_leave_one_default(sessions: Callable) -> None:
    with sessions()() as db:
        for name in ("a", "b", "c"):
            space(db, name)
        db.commit()

    def switch(name: str) -> None:
        with sessions()() as db:
            for _ in range(10):
                set_default_space(session=db, name=name)
                db.commit()

    with ThreadPoolExecutor(max_workers=2) as pool:
        for future in [pool.submit(switch, "b"), pool.submit(switch, "c")]:
            future.result(timeout=60)
    with sessions()() as db:
        assert [s.name for s in list_spaces(session=db) if s.is_default] in (["b"], ["c"])


def test_embedding_while_deleting_keeps_the_log_replayable(sessions: Callable) -> None:
    with sessions()() as db:
        space_id = space(db).id
        image_ids = [image.id for image in add_images(db, 40)]
        db.commit()
    doomed = image_ids[::3]

    def embed() -> None:
        with sessions()() as db:
            for start in range(0, len(image_ids), 5):
                batch = image_ids[start : start + 5]
                add_embeddings(
                    session=db, space_id=space_id, image_ids=batch, vectors=vectors(5, seed=start)
                )
                db.commit()

    def delete() -> None:
        with sessions()() as db:
            for image_id in doomed:
                mark_image_deleted(session=db, image_id=image_id)
                db.commit()

    with ThreadPoolExecutor(max_workers=2) as pool:
        for future in [pool.submit(embed), pool.submit(delete)]:
            future.result(timeout=60)
    with sessions()() as db:
        stored = {e.image_id: e.vector for e in db.scalars(select(Embedding))}
        replica: dict[int, bytes] = {}
        for change in changes_since(session=db, space_id=space_id, watermark=0):
            if change.op == "remove":
                replica.pop(change.image_id, None)
            elif change.vector is not None:
                replica[change.image_id] = change.vector
    assert stored.keys() == set(image_ids) - set(doomed)
    assert replica == stored
