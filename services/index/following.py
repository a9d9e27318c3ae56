"""`lookalike index follow`: keep every Milvus space's collection up to the catalog, polling
its change log (the in-process follower of a deployment without workers, or a dedicated one
beside a cluster, so collections stay current when no search asks)."""

from __future__ import annotations

import logging
import time

from lookalike.services.catalog import spaces as space_queries
from lookalike.services.catalog.models import Space
from lookalike.services.index.follower import apply_all
from lookalike.services.index.milvus_replica import open_collection
from lookalike.services.index.milvus_store import collection_name
from lookalike.services.runtime import Runtime
from lookalike.services.spaces.lookup import find_space

log = logging.getLogger(__name__)


def milvus_spaces(runtime: Runtime, space_name: str | None) -> list[Space]:
    """The named space (which must use Milvus), or every Milvus space."""
    with runtime.read_session() as session:
        spaces = ([find_space(session=session, name=space_name)] if space_name
                  else space_queries.list_spaces(session=session))
        for space in spaces:
            session.expunge(space)
    return [space for space in spaces if space.options.backend == "milvus"]


def follow_once(runtime: Runtime, *, space_name: str | None = None, batch: int,
                chunk: int) -> int:
    """Apply every pending change of each Milvus space; how many were applied."""
    applied = 0
    for space in milvus_spaces(runtime, space_name):
        store = open_collection(space, client=runtime.milvus(),
                                name=collection_name(runtime.settings, space),
                                sessions=runtime.session)
        for done in apply_all(runtime.session, space_id=space.id, dim=space.dim, store=store,
                              limit=batch, chunk=chunk):
            applied += done.changes
    return applied


def follow_forever(runtime: Runtime, *, space_name: str | None, interval: float, batch: int,
                   chunk: int) -> None:
    """Poll the change log every `interval` seconds until the runtime closes."""
    while not runtime.closing.is_set():
        applied = follow_once(runtime, space_name=space_name, batch=batch, chunk=chunk)
        if applied:
            log.info("applied %d changes", applied)
        time.sleep(interval)
