"""The running system's parts, built once per process (API lifespan, CLI command, worker start)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.orm import Session

from lookalike.retrieval.embedder import Embedder
from lookalike.services.catalog.models import Space
from lookalike.services.catalog.session import make_engine, make_session_factory
from lookalike.services.config import Settings
from lookalike.services.indexer import IndexReplica, space_directory
from lookalike.services.spaces import build_embedder


class Runtime:
    """Engine, sessions, and per-space models and index replicas, each loaded on first use."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.engine = make_engine(settings.catalog_url)
        self.sessions = make_session_factory(self.engine)
        self.read_sessions = make_session_factory(self.engine, read_only=True)
        self._embedders: dict[int, Embedder] = {}
        self._replicas: dict[int, IndexReplica] = {}
        self._lock = threading.Lock()

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session that rolls back on error; callers commit explicitly."""
        with self.sessions() as session:
            try:
                yield session
            except BaseException:
                session.rollback()
                raise

    @contextmanager
    def read_session(self) -> Iterator[Session]:
        """A session for use cases that only read; on SQLite it never waits for a writer."""
        with self.read_sessions() as session:
            yield session

    def embedder(self, space: Space) -> Embedder:
        with self._lock:
            if space.id not in self._embedders:
                self._embedders[space.id] = build_embedder(space, settings=self.settings)
            return self._embedders[space.id]

    def replica(self, space: Space, *, session: Session) -> IndexReplica:
        """The space's replica, opened on first use and refreshed to the catalog on every call."""
        with self._lock:
            replica = self._replicas.get(space.id)
            if replica is None:
                directory = space_directory(self.settings.indexes_dir, space)
                replica = IndexReplica.open(space=space, directory=directory, session=session)
                self._replicas[space.id] = replica
                return replica
        replica.refresh(session)
        return replica

    def loaded_replicas(self) -> list[IndexReplica]:
        with self._lock:
            return list(self._replicas.values())

    def close(self) -> None:
        self.engine.dispose()
