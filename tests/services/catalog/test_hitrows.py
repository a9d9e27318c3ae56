"""Hit rows kept per catalog state: read once while the clock's token stays, afresh after it
moves, and always afresh where the catalog has no clock."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import event, update
from sqlalchemy.orm import Session

from lookalike.services.catalog.hitrows import KeptHitRows
from lookalike.services.catalog.images import set_image_status
from lookalike.services.catalog.models import Image
from tests.services.catalog.builders import add_images


@pytest.fixture
def statements(session: Session) -> Iterator[list[str]]:
    """The SELECT statements the session's engine runs from here on."""
    seen: list[str] = []

    def record(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            seen.append(statement)

    engine = session.get_bind()
    event.listen(engine, "before_cursor_execute", record)
    yield seen
    event.remove(engine, "before_cursor_execute", record)


def _embedded(session: Session, statements: list[str], count: int) -> list[int]:
    """`count` new images, all but the last embedded (the last stays pending); what it ran
    is not counted."""
    images = add_images(session, count)
    for image in images[:-1]:
        set_image_status(session=session, image_id=image.id, status="embedded")
    session.commit()
    statements.clear()
    return [image.id for image in images]


def test_rows_read_at_one_token_are_not_read_again(session: Session,
                                                   statements: list[str]) -> None:
    ids = _embedded(session, statements, 4)
    kept = KeptHitRows()
    first = kept.rows(session, ids, token=7)
    assert sorted(first) == ids[:-1]  # the pending image is no hit
    assert len(statements) == 1
    again = kept.rows(session, list(reversed(ids)), token=7)
    assert len(statements) == 1  # every id, the pending one too, was answered from memory
    assert {i: dict(r) for i, r in again.items()} == {i: dict(r) for i, r in first.items()}
    kept.rows(session, ids[:2], token=7)
    assert len(statements) == 1


def test_a_new_token_reads_the_rows_afresh(session: Session, statements: list[str]) -> None:
    ids = _embedded(session, statements, 3)
    kept = KeptHitRows()
    assert kept.rows(session, ids, token=1)[ids[0]]["label"] is None
    session.execute(update(Image).where(Image.id == ids[0]).values(label="renamed"))
    set_image_status(session=session, image_id=ids[-1], status="embedded")
    session.commit()
    assert kept.rows(session, ids, token=1)[ids[0]]["label"] is None  # same token: kept
    read = len(statements)
    fresh = kept.rows(session, ids, token=2)
    assert len(statements) == read + 1
    assert fresh[ids[0]]["label"] == "renamed"
    assert sorted(fresh) == ids  # the image embedded since is a hit now


def test_without_a_clock_every_answer_reads_the_catalog(session: Session,
                                                        statements: list[str]) -> None:
    ids = _embedded(session, statements, 3)
    kept = KeptHitRows()
    assert sorted(kept.rows(session, ids, token=None)) == ids[:-1]
    assert sorted(kept.rows(session, ids, token=None)) == ids[:-1]
    assert len(statements) == 2


def test_the_store_starts_over_when_full_and_still_answers_every_id(
        session: Session, statements: list[str]) -> None:
    ids = _embedded(session, statements, 6)
    kept = KeptHitRows(most=3)
    assert sorted(kept.rows(session, ids[:3], token=1)) == ids[:3]
    assert sorted(kept.rows(session, ids[3:], token=1)) == ids[3:-1]  # 3 more: over `most`
    read = len(statements)
    assert sorted(kept.rows(session, ids[3:], token=1)) == ids[3:-1]  # kept after the reset
    assert len(statements) == read
    assert sorted(kept.rows(session, ids[:3], token=1)) == ids[:3]  # read again
    assert len(statements) == read + 1
