"""Readiness: the catalog answers and every space's index replica has caught up with it."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.exc import SQLAlchemyError

from lookalike.services.catalog import embeddings as embedding_queries
from lookalike.services.catalog import spaces as space_queries
from lookalike.services.runtime import Runtime


@dataclass(frozen=True)
class Readiness:
    ready: bool
    catalog: str
    spaces: dict[str, dict] = field(default_factory=dict)

    def to_public(self) -> dict:
        return {"status": "ready" if self.ready else "not_ready", "catalog": self.catalog,
                "spaces": self.spaces}


def check_readiness(runtime: Runtime) -> Readiness:
    """Load (first time) and catch up each space's replica to the catalog's sequence number
    read before it; ready when all got there. An unreachable catalog is not ready."""
    try:
        with runtime.read_session() as session:
            spaces: dict[str, dict] = {}
            for space in space_queries.list_spaces(session=session):
                target = embedding_queries.latest_seq(session=session, space_id=space.id)
                replica = runtime.replica(space, session=session)
                spaces[space.name] = {"watermark": replica.watermark, "catalog_seq": target,
                                      "caught_up": replica.watermark >= target}
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        return Readiness(ready=False, catalog=f"unreachable: {reason}")
    return Readiness(ready=all(s["caught_up"] for s in spaces.values()), catalog="ok",
                     spaces=spaces)
