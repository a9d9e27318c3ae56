"""A space's Milvus collection: catalog image ids as primary keys, the vector, and the image's
collection and label as scalar fields that searches filter on inside Milvus.

The same calls reach a Milvus cluster (an http(s) address) or milvus-lite (a local path
ending in .db: its native engine in a child process of this one, holding the folder's lock)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lookalike.retrieval.index.faiss_index import SearchHits
from lookalike.services.catalog.documents import MilvusIndexOptions
from lookalike.services.catalog.models import Space
from lookalike.services.config import Settings
from lookalike.services.errors import InvalidRequest

if TYPE_CHECKING:
    from pymilvus import MilvusClient

log = logging.getLogger(__name__)

MAX_TEXT = 200  # the catalog's collection and label columns are String(200)
METRIC = "IP"  # vectors are L2-normalised: inner product is cosine similarity
MAX_LIMIT = 16_384  # Milvus answers at most this many hits per query
WRITE_CHUNK = 1000
CONNECT_RETRY_S = 0.5
# What milvus-lite builds; a cluster also has HNSW, IVF_SQ8, IVF_PQ, DISKANN, SCANN and more.
LITE_INDEX_TYPES = ("FLAT", "IVF_FLAT")
_REMOTE = ("http://", "https://", "tcp://", "grpc://", "unix:")

_clients: dict[str, tuple[MilvusClient, int]] = {}
_clients_lock = threading.Lock()


def is_lite(uri: str) -> bool:
    """Whether the URI selects embedded milvus-lite (a local path) rather than a server."""
    return not uri.startswith(_REMOTE)


def connect(settings: Settings) -> MilvusClient:
    """A client for LOOKALIKE_MILVUS_URI, shared by the runtimes of this process (each call
    counts a user; `disconnect` gives it back)."""
    from pymilvus import MilvusException  # ~1 s: only where a space needs it

    uri = settings.milvus_address
    if is_lite(uri):
        if not uri.endswith(".db"):
            raise InvalidRequest(f"LOOKALIKE_MILVUS_URI '{uri}' is neither a server address "
                                 "(http://host:19530) nor a milvus-lite path ending in .db")
        Path(uri).parent.mkdir(parents=True, exist_ok=True)
    with _clients_lock:
        client, users = _clients.get(uri, (None, 0))
        if client is None:
            try:
                client = _first_client(settings, uri)
            except MilvusException as exc:
                raise InvalidRequest(f"cannot reach Milvus at {uri}: {exc.message}; check "
                                     "LOOKALIKE_MILVUS_URI (for milvus-lite, no other process "
                                     "may hold the same .db folder)") from exc
        _clients[uri] = (client, users + 1)
        return client


def _first_client(settings: Settings, uri: str) -> MilvusClient:
    """Connect, trying again while the connection is refused until the connect timeout ends:
    a milvus-lite engine (or a server) that is still starting refuses at once rather than
    making the first call wait."""
    from pymilvus import MilvusClient, MilvusException
    from pymilvus.client.types import Status

    token = settings.milvus_token.get_secret_value() if settings.milvus_token else ""
    deadline = time.monotonic() + settings.milvus_connect_timeout
    while True:
        left = deadline - time.monotonic()
        try:
            return MilvusClient(uri=uri, token=token, timeout=max(left, CONNECT_RETRY_S))
        except MilvusException as exc:
            if exc.code != Status.CONNECT_FAILED or left <= CONNECT_RETRY_S:
                raise
            log.info("Milvus at %s refused a connection (%s); trying again", uri, exc.message)
            time.sleep(CONNECT_RETRY_S)


def disconnect(settings: Settings) -> None:
    """Give back one use of the address's client; the last closes it and, for milvus-lite,
    stops the embedded server, which frees its folder for another process."""
    uri = settings.milvus_address
    with _clients_lock:
        client, users = _clients.get(uri, (None, 0))
        if client is None:
            return
        if users > 1:
            _clients[uri] = (client, users - 1)
            return
        del _clients[uri]
    client.close()
    if is_lite(uri):
        from milvus_lite.server_manager import server_manager_instance

        server_manager_instance.release_server(uri)


def collection_name(settings: Settings, space: Space) -> str:
    """The space's collection: by id, which a space never shares with another (0005)."""
    return f"{settings.milvus_prefix}_space_{space.id}"


@dataclass(frozen=True)
class Entity:
    """One row of a collection: a catalog image's vector and the fields filters read."""

    image_id: int
    vector: np.ndarray
    collection: str | None
    label: str | None

    def row(self) -> dict[str, Any]:
        return {"id": self.image_id, "vector": self.vector.tolist(),
                "collection": self.collection or "", "label": self.label or ""}


class MilvusCollection:
    """One space's collection: create, write, search, read back, drop."""

    def __init__(self, client: MilvusClient, name: str, dim: int) -> None:
        self.client = client
        self.name = name
        self.dim = dim

    def exists(self) -> bool:
        return bool(self.client.has_collection(self.name))

    def create(self, index: MilvusIndexOptions) -> None:
        """Create the collection with its index, and load it for searching."""
        from pymilvus import DataType

        schema = self.client.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=self.dim)
        schema.add_field("collection", DataType.VARCHAR, max_length=MAX_TEXT)
        schema.add_field("label", DataType.VARCHAR, max_length=MAX_TEXT)
        self.client.create_collection(self.name, schema=schema,
                                      index_params=self._index_params(index),
                                      consistency_level="Strong")
        self.client.load_collection(self.name)
        log.info("Milvus collection %s created (%s)", self.name, index.index_type)

    def open(self, index: MilvusIndexOptions) -> None:
        """Create the collection if absent, else load it (a restarted server holds it
        released)."""
        if not self.exists():
            self.create(index)
            return
        self.client.load_collection(self.name)

    def reindex(self, index: MilvusIndexOptions) -> None:
        """Replace the vector index by another type or parameters (vectors stay)."""
        self.client.release_collection(self.name)
        if self.client.list_indexes(self.name, field_name="vector"):
            self.client.drop_index(self.name, "vector")
        self.client.create_index(self.name, self._index_params(index))
        self.client.load_collection(self.name)

    def drop(self) -> bool:
        """Drop the collection; whether it existed."""
        if not self.exists():
            return False
        self.client.drop_collection(self.name)
        return True

    def _index_params(self, index: MilvusIndexOptions) -> Any:
        params = self.client.prepare_index_params()
        params.add_index(field_name="vector", index_type=index.index_type, metric_type=METRIC,
                         params=dict(index.build_params))
        return params

    def upsert(self, entities: list[Entity]) -> None:
        """Insert or replace rows by image id (safe to repeat)."""
        for start in range(0, len(entities), WRITE_CHUNK):
            self.client.upsert(self.name, [e.row() for e in entities[start:start + WRITE_CHUNK]])

    def delete(self, image_ids: list[int]) -> None:
        """Delete rows by image id (absent ids are ignored, so safe to repeat)."""
        for start in range(0, len(image_ids), WRITE_CHUNK):
            self.client.delete(self.name, ids=image_ids[start:start + WRITE_CHUNK])

    def count(self) -> int:
        rows = self.client.query(self.name, filter="", output_fields=["count(*)"])
        return int(rows[0]["count(*)"])

    def search(self, queries: np.ndarray, k: int, *, params: dict[str, int],
               where: str = "") -> SearchHits:
        """Top-k per query row (ids -1 and scores -inf past the hits found); `where` filters
        inside Milvus."""
        if k > MAX_LIMIT:
            raise InvalidRequest(f"Milvus returns at most {MAX_LIMIT} hits per query; asked {k}")
        answer = self.client.search(self.name, data=np.asarray(queries, dtype=np.float32),
                                    limit=k, filter=where, output_fields=["id"],
                                    search_params={"metric_type": METRIC, "params": params})
        hits = SearchHits(scores=np.full((len(queries), k), -np.inf, dtype=np.float32),
                          ids=np.full((len(queries), k), -1, dtype=np.int64))
        for row, found in enumerate(answer):
            for rank, hit in enumerate(found):
                hits.ids[row, rank] = hit["id"]
                hits.scores[row, rank] = hit["distance"]
        return hits

    def vectors(self, image_ids: list[int]) -> dict[int, np.ndarray]:
        """The stored vectors of those ids present, keyed by id."""
        if not image_ids:
            return {}
        rows = self.client.get(self.name, ids=image_ids, output_fields=["vector"])
        return {int(r["id"]): np.asarray(r["vector"], dtype=np.float32) for r in rows}

    def entities(self, batch: int = 2000) -> Iterator[Entity]:
        """Every row, in no particular order (for verification)."""
        iterator = self.client.query_iterator(self.name, batch_size=batch, filter="",
                                              output_fields=["vector", "collection", "label"])
        try:
            while rows := iterator.next():
                for r in rows:
                    yield Entity(int(r["id"]), np.asarray(r["vector"], dtype=np.float32),
                                 r.get("collection") or None, r.get("label") or None)
        finally:
            iterator.close()
