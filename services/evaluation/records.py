"""Evaluation results kept in the catalog, so that each space shows its last figures."""

from __future__ import annotations

from typing import Any

from lookalike.services.catalog import evaluations as evaluation_queries
from lookalike.services.runtime import Runtime


def record_evaluation(runtime: Runtime, *, space_id: int, benchmark: str, map_score: float,
                      figures: dict[str, Any]) -> None:
    """Store one result of `benchmark` on a space (`figures`: what `evaluate --json` prints)."""
    with runtime.session() as session:
        evaluation_queries.record_evaluation(session=session, space_id=space_id,
                                             benchmark=benchmark, map_score=map_score,
                                             figures=figures)
        session.commit()
