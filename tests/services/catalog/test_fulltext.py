"""Full-text search over titles and captions returns the same ids on SQLite and PostgreSQL,
and follows inserts, edits and deletes (the database keeps its index in step)."""

from __future__ import annotations

import hashlib

import pytest
from sqlalchemy.orm import Session

from lookalike.services.catalog import images as image_queries
from lookalike.services.catalog.fulltext import match_captions
from lookalike.services.catalog.models import Image
from lookalike.services.catalog.schemas import ImageCreate
from lookalike.services.errors import InvalidRequest

CAPTIONS = [
    ("Harbour at dawn", "Fishing boats leaving the harbour before sunrise"),
    ("Old town", "A narrow street with red roofs and a bakery"),
    (None, "Boats racing on the lake, a red sail in front"),
    ("Market", "Fishermen selling the morning catch at the harbour market"),
    (None, None),
]


def _add(session: Session) -> list[int]:
    ids = []
    for number, (title, caption) in enumerate(CAPTIONS):
        sha = hashlib.sha256(str(number).encode()).hexdigest()
        image, _ = image_queries.add_image(session=session, data=ImageCreate(
            sha256=sha, source_uri=f"/p/{number}.jpg", title=title, caption=caption))
        image.status = "embedded"
        ids.append(image.id)
    session.commit()
    return ids


def _found(session: Session, query: str, **kwargs: object) -> list[int]:
    return [m.image_id for m in match_captions(session=session, query=query, limit=10,
                                               **kwargs)]  # type: ignore[arg-type]


def test_same_ids_on_both_databases(session: Session) -> None:
    ids = _add(session)
    assert sorted(_found(session, "harbour")) == [ids[0], ids[3]]
    assert sorted(_found(session, "boat")) == [ids[0], ids[2]]   # stemmed: boats
    assert _found(session, "red sail") == [ids[2]]               # every word must occur
    assert _found(session, "HARBOUR market") == [ids[3]]         # title and caption, any case
    assert _found(session, "zeppelin") == []
    session.get(Image, ids[3]).topic = "work"  # type: ignore[union-attr]
    session.commit()
    assert _found(session, "harbour", filters={"topic": "work"}) == [ids[3]]


def test_the_index_follows_edits_and_deletes(session: Session) -> None:
    ids = _add(session)
    image = session.get(Image, ids[1])
    assert image is not None
    image.caption = "A zeppelin over the harbour"
    session.commit()
    assert sorted(_found(session, "harbour")) == [ids[0], ids[1], ids[3]]
    assert _found(session, "bakery") == []
    image_queries.mark_image_deleted(session=session, image_id=ids[0])
    session.commit()
    assert sorted(_found(session, "harbour")) == [ids[1], ids[3]]


@pytest.mark.parametrize("query", ["", "  ?! ", "x" * 1001])
def test_queries_without_words_or_too_long_are_refused(session: Session, query: str) -> None:
    with pytest.raises(InvalidRequest):
        match_captions(session=session, query=query, limit=10)
