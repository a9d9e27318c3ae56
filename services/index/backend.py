"""A space's vector backend, chosen by its options: per-process FAISS replicas (the embedded
default) or a Milvus collection shared by every process. Both answer the search path through
the same methods (search, vectors, reconstruct, ids, refresh, catch_up, lag)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from lookalike.services.catalog.models import Space
from lookalike.services.config import Settings
from lookalike.services.index.follower import SessionFactory
from lookalike.services.index.milvus_replica import MilvusReplica
from lookalike.services.index.milvus_store import collection_name
from lookalike.services.index.replicas import IndexReplica, space_directory

if TYPE_CHECKING:
    from pymilvus import MilvusClient

SpaceIndex = IndexReplica | MilvusReplica


def open_index(space: Space, *, settings: Settings, sessions: SessionFactory,
               session: Session, milvus: Callable[[], MilvusClient]) -> SpaceIndex:
    """The space's index, caught up with the catalog (`milvus` gives the Milvus client)."""
    if space.options.backend == "milvus":
        return MilvusReplica.open(space=space, client=milvus(),
                                  name=collection_name(settings, space), sessions=sessions,
                                  session=session)
    directory = space_directory(settings.layout.indexes, space)
    return IndexReplica.open(space=space, directory=directory, session=session)
