"""`lookalike bench index --backend faiss|milvus`: one backend on synthetic clustered vectors,
the same for both (same seed): recall@10 against exact search, single-query p50/p99, batched
queries per second, and the memory this process gained by holding the index.

Both build the same index: exact FLAT, IVF-Flat (sqrt(n) lists, 32 probed) or HNSW (M=16,
efConstruction=40, ef=64; a Milvus cluster, not milvus-lite), so the figures compare the
serving paths, not two different indexes. milvus-lite's engine runs as a child process of
this one: its memory is reported apart from this process's; a server's is not visible here.
"""

from __future__ import annotations

import gc
import os
import resource
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from lookalike.retrieval.evaluation.metrics import ann_recall_at_k, exact_search
from lookalike.retrieval.index.choice import clustered_vectors, ivf_lists
from lookalike.retrieval.index.faiss_index import SearchHits, VectorIndex
from lookalike.services.catalog.documents import MilvusIndexOptions
from lookalike.services.config import Settings
from lookalike.services.errors import InvalidRequest
from lookalike.services.index.milvus_store import (
    Entity,
    MilvusCollection,
    connect,
    disconnect,
    is_lite,
)

M, EF_CONSTRUCTION, EF = 16, 40, 64
NPROBE = 32
INDEXES = ("flat", "ivf", "hnsw")
SINGLE_QUERIES = 300
K = 10


@dataclass(frozen=True)
class BackendFigures:
    backend: str
    index: str
    where: str
    vectors: int
    dim: int
    queries: int
    build_s: float
    recall_at_10: float
    p50_ms: float
    p99_ms: float
    batched_qps: float
    rss_gain_mib: float
    peak_rss_mib: float
    engine_rss_mib: float | None

    def to_public(self) -> dict:
        return asdict(self)


def rss_mib() -> float:
    """This process's resident memory now, MiB (/proc/self/statm)."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def children_rss_mib() -> float:
    """Resident memory of this process's child processes now, MiB (milvus-lite's engine)."""
    pages = 0
    for children in Path("/proc/self/task").glob("*/children"):
        for pid in children.read_text().split():
            statm = Path(f"/proc/{pid}/statm")
            if statm.exists():
                pages += int(statm.read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


class _Faiss:
    def __init__(self, dim: int, index: str, vectors: int) -> None:
        factory = {"flat": "Flat", "ivf": f"IVF{ivf_lists(vectors)},Flat", "hnsw": f"HNSW{M}"}
        self.index = VectorIndex(dim, factory=factory[index])
        self.params = {"flat": {}, "ivf": {"nprobe": NPROBE}, "hnsw": {"efSearch": EF}}[index]

    def add(self, vectors: np.ndarray) -> None:
        if not self.index.is_trained:
            self.index.train(vectors)
        self.index.add(np.arange(len(vectors), dtype=np.int64), vectors)

    def search(self, queries: np.ndarray, k: int) -> SearchHits:
        return self.index.search(queries, k, params=self.params)

    def close(self) -> None:
        pass


class _Milvus:
    def __init__(self, settings: Settings, dim: int, index: str, vectors: int) -> None:
        from pymilvus import MilvusException

        self.settings = settings
        self.store = MilvusCollection(connect(settings), f"{settings.milvus_prefix}_bench", dim)
        self.params = {"flat": {}, "ivf": {"nprobe": NPROBE}, "hnsw": {"ef": EF}}[index]
        options = {"flat": MilvusIndexOptions(index_type="FLAT"),
                   "ivf": MilvusIndexOptions(index_type="IVF_FLAT",
                                             build_params={"nlist": ivf_lists(vectors)}),
                   "hnsw": MilvusIndexOptions(index_type="HNSW", build_params={
                       "M": M, "efConstruction": EF_CONSTRUCTION})}[index]
        self.store.drop()
        try:
            self.store.create(options)
        except MilvusException as exc:
            disconnect(settings)
            raise InvalidRequest(f"this Milvus does not build {options.index_type} "
                                 f"({exc.message}); try --index flat or ivf") from exc

    def add(self, vectors: np.ndarray) -> None:
        for start in range(0, len(vectors), 5000):
            chunk = vectors[start:start + 5000]
            self.store.upsert([Entity(start + i, v, None, None) for i, v in enumerate(chunk)])
        self.store.search(vectors[:1], 1, params=self.params)  # the index is built on load

    def search(self, queries: np.ndarray, k: int) -> SearchHits:
        return self.store.search(queries, k, params=self.params)

    def close(self) -> None:
        self.store.drop()
        disconnect(self.settings)


def bench_backend(*, backend: str, vectors: int, dim: int, queries: int, index: str = "ivf",
                  milvus_uri: str | None = None, clusters: int = 1000,
                  spread: float = 1.0) -> BackendFigures:
    """Build the backend's index on synthetic vectors and measure it (see module doc)."""
    if backend not in ("faiss", "milvus") or index not in INDEXES:
        raise InvalidRequest(f"backend must be faiss or milvus and index one of "
                             f"{', '.join(INDEXES)}; got {backend}, {index}")
    gc.collect()
    before = rss_mib()  # before the data, which is freed once the index holds it
    data = clustered_vectors(vectors + queries, dim, clusters=clusters, spread=spread)
    base, held = data[:vectors], data[vectors:].copy()
    truth = exact_search(held, base, K)[1]
    with tempfile.TemporaryDirectory() as scratch:
        uri = milvus_uri or str(Path(scratch) / "bench.db")
        started = time.perf_counter()
        engine = (_Faiss(dim, index, vectors) if backend == "faiss"
                  else _Milvus(Settings(home=Path(scratch), milvus_uri=uri), dim, index, vectors))
        engine.add(base)
        build_s = time.perf_counter() - started
        del data, base
        gc.collect()
        gain = rss_mib() - before
        lite_engine = backend == "milvus" and is_lite(uri)
        engine_mib = children_rss_mib() if lite_engine else None
        recall = ann_recall_at_k(engine.search(held, K).ids, truth)
        single = []
        for row in held[:SINGLE_QUERIES]:
            tick = time.perf_counter()
            engine.search(row[None], K)
            single.append(time.perf_counter() - tick)
        tick = time.perf_counter()
        engine.search(held, K)
        qps = len(held) / (time.perf_counter() - tick)
        engine.close()
    where = ("this process" if backend == "faiss" else
             "milvus-lite, a child process" if lite_engine else f"Milvus at {uri}")
    ms = np.array(single) * 1000
    return BackendFigures(backend, index, where, vectors, dim, queries, build_s, recall,
                          float(np.percentile(ms, 50)), float(np.percentile(ms, 99)), qps,
                          gain, _peak_mib(), engine_mib)
