"""The watermark of each space's external vector store (Milvus): the last change-log sequence
number it holds. A follower takes the row's lock for the whole batch it applies, so two
followers never interleave their writes to one collection."""

from __future__ import annotations

from sqlalchemy import delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from lookalike.services.catalog.models import VectorFollower


def follower_watermark(*, session: Session, space_id: int) -> int:
    """The space's follower watermark, 0 when it has none yet (nothing applied)."""
    query = select(VectorFollower.watermark).where(VectorFollower.space_id == space_id)
    return session.scalar(query) or 0


def lock_follower(*, session: Session, space_id: int) -> int:
    """Take the space's follower lock until the transaction ends; its watermark.

    On PostgreSQL a row lock (SELECT ... FOR UPDATE); on SQLite the write transaction itself
    (catalog sessions BEGIN IMMEDIATE: one writer at a time)."""
    dialect = session.get_bind().dialect.name
    dialect_insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    session.execute(dialect_insert(VectorFollower).values(space_id=space_id, watermark=0)
                    .on_conflict_do_nothing(index_elements=[VectorFollower.space_id]))
    query = (select(VectorFollower.watermark).where(VectorFollower.space_id == space_id)
             .with_for_update())
    return session.scalars(query).one()


def set_follower_watermark(*, session: Session, space_id: int, watermark: int) -> None:
    """Record that the store holds every change up to `watermark` (caller holds the lock)."""
    session.execute(update(VectorFollower).where(VectorFollower.space_id == space_id)
                    .values(watermark=watermark))


def reset_follower(*, session: Session, space_id: int) -> None:
    """Forget the watermark: the next follower replays the space from its first change."""
    session.execute(delete(VectorFollower).where(VectorFollower.space_id == space_id))
