"""Index snapshots: which file holds a space's index and up to which catalog watermark."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from lookalike.services.catalog.models import IndexSnapshot


def record_snapshot(
    *,
    session: Session,
    space_id: int,
    path: str,
    factory: str,
    vector_count: int,
    watermark: int,
    sha256: str,
) -> IndexSnapshot:
    """Record an index file just written (after its rename made it visible)."""
    snapshot = IndexSnapshot(
        space_id=space_id,
        path=path,
        factory=factory,
        vector_count=vector_count,
        watermark=watermark,
        sha256=sha256,
    )
    session.add(snapshot)
    session.flush()
    return snapshot


def latest_snapshot(*, session: Session, space_id: int) -> IndexSnapshot | None:
    """The newest snapshot recorded for a space, or None: `index verify` checks its file."""
    query = select(IndexSnapshot).where(IndexSnapshot.space_id == space_id)
    return session.scalar(query.order_by(IndexSnapshot.id.desc()).limit(1))
