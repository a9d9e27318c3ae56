"""Regions: boxes in original pixels, listed best first, gone with their image (SQLite and
PostgreSQL), and migration 0009 turning x, y, w, h into corners and back."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from lookalike.services.catalog.images import add_image, mark_image_deleted
from lookalike.services.catalog.migrate import downgrade, upgrade
from lookalike.services.catalog.models import Image, Region
from lookalike.services.catalog.regions import add_regions, image_regions, replace_regions
from lookalike.services.catalog.schemas import RegionCreate
from lookalike.services.catalog.session import make_engine
from lookalike.services.errors import ImageNotFound, InvalidRequest
from tests.services.catalog.builders import image_data


def _image(session: Session, key: str = "scene") -> Image:
    image, _ = add_image(session=session, data=image_data(key, width=200, height=100))
    return image


def _box(x0: float, y0: float, x1: float, y1: float, *, score: float | None = None,
         detector: str = "fcos", label: str | None = "bag") -> RegionCreate:
    return RegionCreate(x0=x0, y0=y0, x1=x1, y1=y1, score=score, detector=detector, label=label)


def _count(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(Region)) or 0)


def test_regions_keep_their_boxes_and_list_best_first(session: Session) -> None:
    image = _image(session)
    add_regions(session=session, image_id=image.id, regions=[
        _box(0, 0, 10, 10, score=0.5), _box(5, 5, 200, 100, score=0.9),
        _box(1, 2, 3, 4, detector="user", label=None)])
    session.commit()
    found = image_regions(session=session, image_id=image.id)
    assert [(r.x0, r.y0, r.x1, r.y1) for r in found] == [(5, 5, 200, 100), (0, 0, 10, 10),
                                                          (1, 2, 3, 4)]
    assert [r.detector for r in found] == ["fcos", "fcos", "user"]
    assert all(r.created_at.tzinfo is not None for r in found)
    assert len(image_regions(session=session, image_id=image.id, detector="user")) == 1


def test_replacing_one_detectors_regions_keeps_the_others(session: Session) -> None:
    image = _image(session)
    add_regions(session=session, image_id=image.id, regions=[
        _box(0, 0, 10, 10, score=0.5), _box(1, 1, 9, 9, detector="user")])
    replace_regions(session=session, image_id=image.id, detector="fcos",
                    regions=[_box(20, 20, 40, 40, score=0.7)])
    session.commit()
    found = image_regions(session=session, image_id=image.id)
    assert [(r.detector, r.x0) for r in found] == [("fcos", 20), ("user", 1)]


@pytest.mark.parametrize(("box", "message"), [
    ((10, 10, 10, 20), "empty or inverted"),
    ((30, 10, 20, 20), "empty or inverted"),
    ((0, 0, 201, 50), "outside image"),
])
def test_bad_boxes_are_refused_with_what_was_wrong(
        session: Session, box: tuple[float, ...], message: str) -> None:
    image = _image(session)
    with pytest.raises(InvalidRequest, match=message):
        add_regions(session=session, image_id=image.id, regions=[_box(*box)])


def test_the_database_itself_refuses_an_inverted_box(session: Session) -> None:
    image = _image(session)
    session.add(Region(image_id=image.id, x0=5, y0=5, x1=1, y1=9, detector="user"))
    with pytest.raises(IntegrityError):
        session.flush()


def test_regions_follow_their_image_through_delete(session: Session) -> None:
    kept, marked, removed = _image(session, "a"), _image(session, "b"), _image(session, "c")
    for image in (kept, marked, removed):
        add_regions(session=session, image_id=image.id, regions=[_box(0, 0, 5, 5, score=0.3)])
    session.commit()
    assert mark_image_deleted(session=session, image_id=marked.id)
    session.execute(delete(Image).where(Image.id == removed.id))
    session.commit()
    assert _count(session) == 1
    assert [r.image_id for r in session.scalars(select(Region))] == [kept.id]
    with pytest.raises(ImageNotFound):
        add_regions(session=session, image_id=marked.id, regions=[_box(0, 0, 5, 5)])


def test_0009_turns_sizes_into_corners_and_back(database_url: str) -> None:
    upgrade(database_url, "0008")
    engine = make_engine(database_url)
    try:
        with engine.begin() as connection:
            connection.execute(sa.text(
                "INSERT INTO image (sha256, source_uri, status, meta) "
                "VALUES (:sha, 'file:///a.png', 'embedded', '{}')"), {"sha": "a" * 64})
            connection.execute(sa.text(
                "INSERT INTO region (image_id, x, y, w, h, label, score, source) "
                "VALUES (1, 10, 20, 30, 40, 'bag', 0.8, 'fcos')"))
        upgrade(database_url)
        with engine.connect() as connection:
            row = connection.execute(sa.text(
                "SELECT x0, y0, x1, y1, detector, label FROM region")).one()
        assert tuple(row) == (10, 20, 40, 60, "fcos", "bag")
        downgrade(database_url, "0008")
        with engine.connect() as connection:
            row = connection.execute(sa.text("SELECT x, y, w, h, source FROM region")).one()
        assert tuple(row) == (10, 20, 30, 40, "fcos")
    finally:
        engine.dispose()
