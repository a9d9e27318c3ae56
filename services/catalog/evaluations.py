"""Evaluation rows: each benchmark result of a space, and the newest one per space."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from lookalike.services.catalog.models import Evaluation


def record_evaluation(*, session: Session, space_id: int, benchmark: str, map_score: float,
                      figures: dict[str, Any]) -> Evaluation:
    """Keep one result of `benchmark` on the space; the caller commits."""
    evaluation = Evaluation(space_id=space_id, benchmark=benchmark, map=map_score,
                            figures=figures)
    session.add(evaluation)
    session.flush()
    return evaluation


def latest_evaluations(*, session: Session, space_ids: Sequence[int]) -> dict[int, Evaluation]:
    """The newest evaluation of each of these spaces that has one, keyed by space id."""
    if not space_ids:
        return {}
    newest = (select(func.max(Evaluation.id))
              .where(Evaluation.space_id.in_(list(space_ids)))
              .group_by(Evaluation.space_id))
    rows = session.scalars(select(Evaluation).where(Evaluation.id.in_(newest)))
    return {row.space_id: row for row in rows}
