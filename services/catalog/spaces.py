"""Embedding spaces: creation, lookup, deletion, and the atomic switch of the default space."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from lookalike.services.catalog.documents import SpaceOptions
from lookalike.services.catalog.models import Embedding, Space, utcnow
from lookalike.services.catalog.schemas import SpaceCreate
from lookalike.services.errors import SpaceExists, SpaceNotFound


def create_space(*, session: Session, data: SpaceCreate) -> Space:
    """Add a space; it becomes the default if asked to or if no default exists yet."""
    space = Space(**data.model_dump(exclude={"make_default", "options"}), options=data.options,
                  is_default=False)
    try:
        with session.begin_nested():
            session.add(space)
    except IntegrityError as error:
        raise SpaceExists(f"space {data.name!r} already exists; pick another name") from error
    if data.make_default or get_default_space(session=session) is None:
        set_default_space(session=session, name=space.name)
    return space


def get_space(*, session: Session, name: str) -> Space | None:
    """The space called `name`, or None."""
    return session.scalar(select(Space).where(Space.name == name))


def get_default_space(*, session: Session) -> Space | None:
    """The space searches use when none is named, or None in an empty catalog."""
    return session.scalar(select(Space).where(Space.is_default))


def list_spaces(*, session: Session) -> list[Space]:
    """Every space, oldest first."""
    return list(session.scalars(select(Space).order_by(Space.id)))


def set_default_space(*, session: Session, name: str) -> Space:
    """Make `name` the one default space, in the caller's transaction.

    Every space row is locked first so that concurrent switches queue up; the old default is
    cleared before the new one is set, so the one-default index is never violated.
    """
    lock_spaces(session=session, space_ids=None)
    space = get_space(session=session, name=name)
    if space is None:
        known = ", ".join(s.name for s in list_spaces(session=session)) or "none"
        raise SpaceNotFound(f"unknown space {name!r}; available: {known}")
    others = update(Space).where(Space.is_default, Space.id != space.id).values(is_default=False)
    session.execute(others)
    session.execute(update(Space).where(Space.id == space.id).values(is_default=True))
    mark_filled(session=session, space_id=space.id)
    session.flush()
    return space


def set_space_options(*, session: Session, space_id: int, options: SpaceOptions) -> None:
    """Replace a space's options document (verification defaults, copy calibration)."""
    session.execute(update(Space).where(Space.id == space_id).values(options=options))
    session.flush()


def mark_filled(*, session: Session, space_id: int) -> None:
    """Record, the first time, that the space holds the whole catalog: from then on ingest
    embeds every new image into it. The default space, which ingest writes into, always is."""
    statement = (update(Space).where(Space.id == space_id, Space.filled_at.is_(None))
                 .values(filled_at=utcnow()))
    session.execute(statement)


def filled_spaces(*, session: Session) -> list[Space]:
    """The spaces that ingest keeps whole (see `mark_filled`), oldest first."""
    return list(session.scalars(select(Space).where(Space.filled_at.is_not(None))
                                .order_by(Space.id)))


def delete_space(*, session: Session, space_id: int) -> None:
    """Remove a space in the caller's transaction; its embeddings, change log, snapshot and
    evaluation rows go with it (ON DELETE CASCADE). The caller keeps the default in place."""
    session.execute(delete(Space).where(Space.id == space_id))
    session.flush()


def vector_count(*, session: Session, space_id: int) -> int:
    """How many vectors the space holds (what a full index of it contains): whole-image
    vectors, or in a region space region vectors (a space holds one kind)."""
    query = select(func.count()).where(Embedding.space_id == space_id)
    return session.scalar(query) or 0


def lock_spaces(*, session: Session, space_ids: Sequence[int] | None) -> list[int]:
    """Row-lock these spaces (all when None) in id order until the transaction ends.

    Writers of a space's change log hold its lock while they append, so sequence numbers
    commit in the order they were drawn and a replica's watermark never skips one.
    On SQLite the lock is the database's single writer; the clause is not emitted.
    """
    query = select(Space.id).order_by(Space.id).with_for_update(key_share=True)
    if space_ids is not None:
        if not space_ids:
            return []
        query = query.where(Space.id.in_(space_ids))
    return list(session.scalars(query))
