"""`lookalike index build` and `bench index`: pick, tune and build a space's FAISS index."""

from __future__ import annotations

import re
import time
from dataclasses import asdict, dataclass

import numpy as np

from lookalike.retrieval.index.choice import IndexChoice, choose_index, clustered_vectors
from lookalike.services.catalog import embeddings as embedding_queries
from lookalike.services.errors import InvalidRequest
from lookalike.services.index.milvus_choice import choose_milvus_index
from lookalike.services.index.milvus_replica import open_collection
from lookalike.services.index.milvus_store import collection_name, is_lite
from lookalike.services.index.replicas import vectors_from_bytes
from lookalike.services.index.snapshots import SnapshotReport, rebuild_all
from lookalike.services.runtime import Runtime
from lookalike.services.spaces.lookup import find_space

HELD_OUT = 1000
_UNITS = {"": 1, "B": 1, "KB": 2**10, "MB": 2**20, "GB": 2**30, "TB": 2**40}


def parse_bytes(text: str) -> int:
    """'4GB', '512MB', '1e9' or '1000000' as a number of bytes."""
    match = re.fullmatch(r"\s*([0-9.eE+]+)\s*([KMGT]?B?)\s*", text.upper())
    if match is None or match.group(2) not in _UNITS:
        raise InvalidRequest(f"memory size '{text}' is not understood; write e.g. 4GB, 512MB")
    return int(float(match.group(1)) * _UNITS[match.group(2)])


@dataclass
class BuildReport:
    """What was chosen for a space (or synthetic data) and what it measured."""

    space: str
    vectors: int
    dim: int
    held_out: int
    choice: IndexChoice
    snapshot: SnapshotReport | None
    seconds: float
    note: str | None = None

    def to_public(self) -> dict:
        data = asdict(self)
        data["choice"]["tried"] = [asdict(t) for t in self.choice.tried]
        return data


def split_held_out(n: int, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(base rows, held-out query rows): up to 1000 or a tenth of the rows are held out."""
    held = min(HELD_OUT, max(1, n // 10))
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[held:]), np.sort(order[:held])


def build_space_index(runtime: Runtime, *, space_name: str | None, target_recall: float,
                      max_bytes: int) -> BuildReport:
    """Choose and tune the space's index on held-out vectors, store it with the space, rebuild."""
    started = time.perf_counter()
    with runtime.session() as session:
        space = find_space(session=session, name=space_name)
        blobs = [b for _, batch, _ in embedding_queries.iter_vectors(session=session,
                                                                      space_id=space.id)
                 for b in batch]
        name, dim, backend = space.name, space.dim, space.options.backend
    if len(blobs) < 2:
        raise InvalidRequest(f"space '{name}' has {len(blobs)} vectors; embed images into it "
                             "first (`lookalike ingest` or `lookalike spaces reindex`)")
    vectors = vectors_from_bytes(blobs, dim)
    base, held = split_held_out(len(vectors))
    if backend == "milvus":
        return _build_milvus(runtime, name, vectors[base], vectors[held], started,
                             target_recall=target_recall, max_bytes=max_bytes)
    _, choice = choose_index(vectors[base], vectors[held], target_recall=target_recall,
                             max_bytes=max_bytes)
    with runtime.session() as session:
        space = find_space(session=session, name=name)
        space.options = space.options.model_copy(
            update={"index_factory": choice.factory, "search_params": choice.params})
        session.commit()
    report = rebuild_all(runtime, space_name=name)[0]
    return BuildReport(name, len(vectors), dim, len(held), choice, report,
                       time.perf_counter() - started)


def _build_milvus(runtime: Runtime, name: str, base: np.ndarray, held: np.ndarray,
                  started: float, *, target_recall: float, max_bytes: int) -> BuildReport:
    """Measure the Milvus index types in a scratch collection, store the choice with the
    space and re-index its collection with it."""
    with runtime.read_session() as session:
        space = find_space(session=session, name=name)
        session.expunge(space)
    collection = collection_name(runtime.settings, space)
    chosen = choose_milvus_index(runtime.milvus(), f"{collection}_tuning", base, held,
                                 target_recall=target_recall, max_bytes=max_bytes,
                                 lite=is_lite(runtime.settings.milvus_address))
    with runtime.session() as session:
        row = find_space(session=session, name=name)
        row.options = row.options.model_copy(update={"milvus_index": chosen.index})
        session.commit()
        session.refresh(row)
        session.expunge(row)
    store = open_collection(row, client=runtime.milvus(), name=collection,
                            sessions=runtime.session)
    store.reindex(chosen.index)
    runtime.forget_index(row.id)
    note = (f"this Milvus server lacks {', '.join(chosen.unsupported)}: not tried"
            if chosen.unsupported else None)
    return BuildReport(name, len(base) + len(held), row.dim, len(held), chosen.choice, None,
                       time.perf_counter() - started, note)


def bench_index(*, vectors: int, dim: int, queries: int, target_recall: float,
                max_bytes: int, clusters: int = 1000, spread: float = 1.0) -> BuildReport:
    """The same choice on synthetic clustered unit vectors (`queries` held out)."""
    started = time.perf_counter()
    data = clustered_vectors(vectors + queries, dim, clusters=clusters, spread=spread)
    _, choice = choose_index(data[:vectors], data[vectors:], target_recall=target_recall,
                             max_bytes=max_bytes)
    return BuildReport("synthetic", vectors, dim, queries, choice, None,
                       time.perf_counter() - started)
