"""Counts an operator watches: images and jobs by state, and how old unapplied changes are."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from lookalike.services.catalog.models import Image, IndexChange, Job


def images_by_status(*, session: Session) -> dict[str, int]:
    """How many images have each status (statuses with none are absent)."""
    rows = session.execute(select(Image.status, func.count()).group_by(Image.status))
    return {status: count for status, count in rows}


def jobs_by_state(*, session: Session) -> dict[str, int]:
    """How many jobs are in each state (the queue depth is the `queued` count)."""
    rows = session.execute(select(Job.state, func.count()).group_by(Job.state))
    return {state: count for state, count in rows}


def oldest_change_after(*, session: Session, space_id: int, watermark: int) -> datetime | None:
    """When the space's first change after `watermark` was logged, or None if there is none."""
    query = (select(IndexChange.created_at)
             .where(IndexChange.space_id == space_id, IndexChange.id > watermark)
             .order_by(IndexChange.id).limit(1))
    return session.scalar(query)
