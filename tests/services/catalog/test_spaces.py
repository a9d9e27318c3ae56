"""Spaces: the first is the default, switching is atomic, and the database allows one default."""

from __future__ import annotations

import pytest
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from lookalike.services.catalog.models import Space
from lookalike.services.catalog.schemas import SpaceCreate
from lookalike.services.catalog.spaces import (
    create_space,
    get_default_space,
    get_space,
    list_spaces,
    set_default_space,
)
from lookalike.services.errors import SpaceExists, SpaceNotFound
from tests.services.catalog.builders import space


def _defaults(session: Session) -> list[str]:
    return [s.name for s in list_spaces(session=session) if s.is_default]


def test_first_space_becomes_default(session: Session) -> None:
    first = space(session, "gap")
    space(session, "gem")
    session.commit()
    assert get_default_space(session=session) == first
    assert _defaults(session) == ["gap"]
    assert [s.name for s in list_spaces(session=session)] == ["gap", "gem"]


def test_create_space_can_take_over_the_default(session: Session) -> None:
    space(session, "gap")
    data = SpaceCreate(
        name="tuned", backbone="resnet18", layer="layer4", pooling="mac", dim=512, make_default=True
    )
    create_space(session=session, data=data)
    session.commit()
    assert _defaults(session) == ["tuned"]


def test_switching_the_default_leaves_exactly_one(session: Session) -> None:
    for name in ("a", "b", "c"):
        space(session, name)
    session.commit()
    for name in ("c", "b", "b", "a"):
        assert set_default_space(session=session, name=name).name == name
        session.commit()
        session.expire_all()
        assert _defaults(session) == [name]


def test_failed_switch_keeps_the_old_default(session: Session) -> None:
    space(session, "a")
    space(session, "b")
    session.commit()
    with pytest.raises(SpaceNotFound, match="'nope'; available: a, b"):
        set_default_space(session=session, name="nope")
    session.rollback()
    assert _defaults(session) == ["a"]


def test_database_allows_only_one_default(session: Session) -> None:
    space(session, "a")
    space(session, "b")
    session.commit()
    with pytest.raises(IntegrityError, match="uq_space_one_default|UNIQUE"):
        session.execute(update(Space).where(Space.name == "b").values(is_default=True))
    session.rollback()
    assert _defaults(session) == ["a"]


def test_space_names_are_unique(session: Session) -> None:
    space(session, "gap")
    with pytest.raises(SpaceExists, match="'gap' already exists"):
        space(session, "gap")
    session.commit()
    assert get_space(session=session, name="gap") is not None
    assert get_space(session=session, name="other") is None
    assert len(list_spaces(session=session)) == 1
