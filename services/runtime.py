"""The running system's parts, built once per process (API lifespan, CLI command, worker start).

The model and index stack (torch, FAISS, Milvus) is imported when first used, so a command
that only reads or writes the catalog (keys, storage, jobs list) starts in a fraction of the
time."""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, TypeVar

from sqlalchemy import RowMapping
from sqlalchemy.orm import Session

from lookalike.services.catalog.clock import CatalogClock
from lookalike.services.catalog.hitrows import KeptHitRows
from lookalike.services.catalog.models import Space, TextModel
from lookalike.services.catalog.session import make_engine, make_session_factory
from lookalike.services.config import Settings

if TYPE_CHECKING:
    from pymilvus import MilvusClient

    from lookalike.retrieval.embedding.embedder import Embedder
    from lookalike.retrieval.embedding.regions import TrunkTap
    from lookalike.retrieval.text.classifier import TextClassifier
    from lookalike.services.index.backend import SpaceIndex
    from lookalike.services.jobs.launch import Launcher
    from lookalike.services.search.batching import QueryBatcher

T = TypeVar("T")
MEMO_ENTRIES = 1024  # answers kept per catalog state (one per API key seen, at most)
CLOCK = "catalog_clock"  # Session.info: the clock's token when the session was opened


class Runtime:
    """Engine, sessions, and per-space models and index replicas, each loaded on first use."""

    def __init__(self, settings: Settings, *, launcher: Launcher | None = None) -> None:
        self.settings = settings
        self._launcher = launcher
        self.engine = make_engine(settings.catalog_url)
        self.sessions = make_session_factory(self.engine)
        self.read_sessions = make_session_factory(self.engine, read_only=True)
        self._embedders: dict[int, tuple[datetime, QueryBatcher]] = {}
        self._taps: dict[tuple[int, int], tuple[datetime, TrunkTap]] = {}
        self._replicas: dict[int, tuple[datetime, SpaceIndex]] = {}
        self._refreshed: dict[int, int] = {}  # space id -> clock token its replica caught up at
        self.clock = CatalogClock(settings.catalog_url)
        self._memo: dict[Hashable, tuple[int, object]] = {}
        # The memo's own lock: `kept` runs on the server's event loop, which must never wait
        # while another thread holds `_lock` to load a model or open a replica.
        self._memo_lock = threading.Lock()
        self._hit_rows = KeptHitRows()
        self._text_models: dict[str, TextClassifier] = {}
        self._lock = threading.Lock()
        self.closing = threading.Event()
        self._milvus: MilvusClient | None = None

    @property
    def launcher(self) -> Launcher:
        """Where jobs run, chosen at start-up (`open_runtime`)."""
        if self._launcher is None:
            raise RuntimeError("this runtime was built without a job launcher; "
                               "open it with lookalike.services.setup.open_runtime")
        return self._launcher

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session that rolls back on error; callers commit explicitly."""
        with self.sessions() as session:
            session.info[CLOCK] = self.clock.now()
            try:
                yield session
            except BaseException:
                session.rollback()
                raise

    @contextmanager
    def read_session(self) -> Iterator[Session]:
        """A session for use cases that only read; on SQLite it never waits for a writer."""
        with self.read_sessions() as session:
            session.info[CLOCK] = self.clock.now()
            yield session

    def fresh(self, key: Hashable, load: Callable[[], T], *,
              session: Session | None = None) -> T:
        """`load()`, or what it returned earlier if nothing was committed to the catalog
        since (services/catalog/clock.py): per-request lookups cost one read per change.
        A `load` that reads through `session` is dated by the session's opening (its
        snapshot is no older), one that opens its own session by now."""
        token = self.clock.now() if session is None else session.info.get(CLOCK)
        if token is None:
            return load()
        found, kept = self._kept_at(key, token)
        if found:
            return kept  # type: ignore[return-value]
        value = load()
        with self._memo_lock:
            if len(self._memo) >= MEMO_ENTRIES or any(
                    seen != token for seen, _ in self._memo.values()):
                self._memo = {k: v for k, v in self._memo.items() if v[0] == token}
                if len(self._memo) >= MEMO_ENTRIES:
                    self._memo.clear()
            self._memo[key] = (token, value)
        return value

    def kept(self, key: Hashable) -> tuple[bool, object]:
        """(True, what `fresh` kept for `key`) while nothing was committed since, else
        (False, None): lets the event loop answer without a thread hop when no catalog read
        is needed (reading the clock costs microseconds and no transaction)."""
        token = self.clock.now()
        return (False, None) if token is None else self._kept_at(key, token)

    def hit_rows(self, session: Session, ids: Sequence[int]) -> dict[int, RowMapping]:
        """What answers show of the embedded images among `ids`, keyed by id: read through
        `session` once per catalog state (services/catalog/hitrows.py)."""
        return self._hit_rows.rows(session, ids, token=session.info.get(CLOCK))

    def _kept_at(self, key: Hashable, token: int) -> tuple[bool, object]:
        """(True, the value kept for `key` at clock `token`), else (False, None)."""
        with self._memo_lock:
            kept = self._memo.get(key)
        if kept is None or kept[0] != token:
            return False, None
        return True, kept[1]

    def embedder(self, space: Space) -> Embedder:
        return self.query_batcher(space).embedder

    def query_batcher(self, space: Space) -> QueryBatcher:
        """The space's model behind the batcher that query images share (search/batching)."""
        from lookalike.services.search.batching import QueryBatcher
        from lookalike.services.spaces.lookup import build_embedder

        with self._lock:
            cached = self._embedders.get(space.id)
            if cached is None or cached[0] != space.created_at:
                batcher = QueryBatcher(build_embedder(space, settings=self.settings),
                                       max_batch=self.settings.query_batch,
                                       max_wait_s=self.settings.query_batch_wait_ms / 1000)
                cached = (space.created_at, batcher)
                self._embedders[space.id] = cached
            return cached[1]

    def region_tap(self, space: Space, layer: int, *, side: int) -> TrunkTap:
        """The space's trunk (its verified weights, eager torch) cut after block `layer`, for
        region vectors that append that block's map; loaded once per space and layer."""
        from lookalike.retrieval.embedding.regions import TrunkTap
        from lookalike.retrieval.models.registry import get_backbone, load_feature_extractor
        from lookalike.services.spaces.lookup import space_weights

        with self._lock:
            cached = self._taps.get((space.id, layer))
            if cached is None or cached[0] != space.created_at:
                trunk = load_feature_extractor(get_backbone(space.backbone),
                                               weights=space_weights(space,
                                                                     settings=self.settings))
                cached = (space.created_at, TrunkTap(trunk, layer=layer, side=side))
                self._taps[(space.id, layer)] = cached
            return cached[1]

    def replica(self, space: Space, *, session: Session) -> SpaceIndex:
        """The space's replica (FAISS) or collection (Milvus), opened on first use and
        refreshed to the catalog on every call (skipped when the catalog clock says nothing
        was committed since the last refresh).

        A cached model or replica serves only the space row it was built for: the creation
        time is checked beside the id (which SQLite gave out again before revision 0005)."""
        from lookalike.services.index.backend import open_index
        from lookalike.services.index.milvus_replica import MilvusReplica

        token = session.info.get(CLOCK)  # the session's snapshot is no older than this
        with self._lock:
            cached = self._replicas.get(space.id)
            if cached is None or cached[0] != space.created_at:
                replica = open_index(space, settings=self.settings, sessions=self.session,
                                     session=session, milvus=self._milvus_client)
                self._replicas[space.id] = (space.created_at, replica)
                self._refreshed.pop(space.id, None)
                return replica
            if token is not None and self._refreshed.get(space.id) == token:
                return cached[1]
        replica = cached[1]
        if isinstance(replica, MilvusReplica):  # `index build` in any process retunes it
            replica.search_params = dict(space.options.milvus_index.search_params)
        replica.refresh(session)
        if token is not None:
            with self._lock:
                self._refreshed[space.id] = token
        return replica

    def text_classifier(self, model: TextModel) -> TextClassifier:
        """The classifier in a text model's file (checked against its sha256), loaded once."""
        from lookalike.services.text.store import load_classifier

        with self._lock:
            cached = self._text_models.get(model.sha256)
            if cached is None:
                cached = load_classifier(model, settings=self.settings)
                self._text_models[model.sha256] = cached
            return cached

    def milvus(self) -> MilvusClient:
        """This runtime's Milvus client (LOOKALIKE_MILVUS_URI), connected on first use."""
        with self._lock:
            return self._milvus_client()

    def _milvus_client(self) -> MilvusClient:
        """The client; the caller holds the runtime's lock."""
        from lookalike.services.index.milvus_store import connect

        if self._milvus is None:
            self._milvus = connect(self.settings)
        return self._milvus

    def loaded_replicas(self) -> list[SpaceIndex]:
        with self._lock:
            return [replica for _, replica in self._replicas.values()]

    def forget(self, space_id: int) -> None:
        """Drop the model and replica of a space (deleted) that this process holds."""
        with self._lock:
            self._embedders.pop(space_id, None)
            self._replicas.pop(space_id, None)
            self._refreshed.pop(space_id, None)

    def forget_index(self, space_id: int) -> None:
        """Drop the index this process holds for a space (rebuilt elsewhere): the next
        search opens it again."""
        with self._lock:
            self._replicas.pop(space_id, None)
            self._refreshed.pop(space_id, None)

    def close(self) -> None:
        """Tell background waiters (job runners waiting for a lease) to give up, and close
        the catalog's connections."""
        self.closing.set()
        with self._lock:
            connected, self._milvus = self._milvus is not None, None
        if connected:
            from lookalike.services.index.milvus_store import disconnect

            disconnect(self.settings)
        self.clock.close()
        self.engine.dispose()

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
