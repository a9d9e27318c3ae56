"""Choosing a Milvus space's index type and search parameters by measured recall.

The held-out queries' exact top-k is computed here (brute force); the base vectors go once
into a scratch collection, which is re-indexed for each candidate, cheapest in memory first.
Each candidate's search knob (nprobe, ef) rises until recall@k reaches the target; of those
that reach it the fastest in batched queries per second wins, with `choose_index`'s sweep,
timing and ranking (retrieval/index/choice.py). Index types the server lacks (milvus-lite
builds only FLAT and IVF_FLAT) are skipped and named in the choice."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from lookalike.retrieval.index.choice import (
    IndexChoice,
    Trial,
    better_choice,
    exact_top_k,
    ivf_lists,
    queries_per_second,
    sweep,
)
from lookalike.retrieval.index.faiss_index import SearchParams
from lookalike.services.catalog.documents import MilvusIndexOptions
from lookalike.services.index.milvus_store import LITE_INDEX_TYPES, Entity, MilvusCollection

if TYPE_CHECKING:
    from pymilvus import MilvusClient

_EF = (16, 32, 64, 128, 256, 512)


@dataclass(frozen=True)
class MilvusCandidate:
    """An index type with its build parameters, its search knob and the values to try, and
    its approximate memory per vector."""

    index_type: str
    build_params: dict[str, int]
    knob: str | None
    values: tuple[int, ...]
    bytes_per_vector: int

    def label(self) -> str:
        built = ",".join(f"{k}={v}" for k, v in self.build_params.items())
        return f"{self.index_type}({built})" if built else self.index_type


@dataclass
class MilvusChoice:
    """The chosen index, as stored with the space, and what was measured."""

    index: MilvusIndexOptions
    choice: IndexChoice
    unsupported: list[str] = field(default_factory=list)


def milvus_candidates(n: int, dim: int, max_bytes: int) -> list[MilvusCandidate]:
    """Index types to try, least memory first, within the budget; FLAT always closes the
    list (exact: it reaches any target)."""
    nlist = ivf_lists(n)
    probes = tuple(p for p in (1, 2, 4, 8, 16, 32, 64, 128, 256, 512) if p <= nlist)
    pq_m = next(m for m in (dim // 4, dim // 8, 8, 4, 2, 1) if m >= 1 and dim % m == 0)
    found = [
        MilvusCandidate("IVF_PQ", {"nlist": nlist, "m": pq_m, "nbits": 8}, "nprobe", probes,
                        pq_m + 8),
        MilvusCandidate("IVF_SQ8", {"nlist": nlist}, "nprobe", probes, dim + 8),
        MilvusCandidate("DISKANN", {}, "search_list", (16, 32, 64, 128, 256), dim + 8),
        MilvusCandidate("HNSW", {"M": 16, "efConstruction": 200}, "ef", _EF,
                        4 * dim + 8 + 16 * 2 * 4),
        MilvusCandidate("IVF_FLAT", {"nlist": nlist}, "nprobe", probes, 4 * dim + 8),
        MilvusCandidate("FLAT", {}, None, (), 4 * dim + 8),
    ]
    return [c for c in found if c.bytes_per_vector * n <= max_bytes or c.index_type == "FLAT"]


def _tune(candidate: MilvusCandidate, store: MilvusCollection, queries: np.ndarray,
          truth: np.ndarray, target: float, k: int) -> list[Trial]:
    settings: list[SearchParams] = (
        [{}] if candidate.knob is None
        else [{candidate.knob: max(v, k) if candidate.knob == "ef" else v}
              for v in candidate.values])
    return sweep(candidate.label(), settings,
                 lambda params: store.search(queries, k, params=params).ids, truth, target)


def _qps(store: MilvusCollection, queries: np.ndarray, k: int, params: SearchParams) -> float:
    return queries_per_second(lambda: store.search(queries, k, params=params), len(queries))


def choose_milvus_index(client: MilvusClient, scratch: str, base: np.ndarray,
                        queries: np.ndarray, *, target_recall: float, max_bytes: int,
                        lite: bool, k: int = 10) -> MilvusChoice:
    """The fastest index reaching `target_recall`@k on `queries`, measured in a scratch
    collection (dropped afterwards)."""
    options = milvus_candidates(len(base), base.shape[1], max_bytes)
    unsupported = [c.index_type for c in options if lite and c.index_type not in LITE_INDEX_TYPES]
    options = [c for c in options if c.index_type not in unsupported]
    truth = exact_top_k(base, queries, k)
    store = MilvusCollection(client, scratch, base.shape[1])
    store.drop()
    store.create(MilvusIndexOptions(index_type="FLAT"))
    try:
        store.upsert([Entity(i, v, None, None) for i, v in enumerate(base)])
        return _best(store, options, queries, truth, target_recall, k, unsupported)
    finally:
        store.drop()


def _reindex(store: MilvusCollection, candidate: MilvusCandidate) -> bool:
    """Index the scratch collection as `candidate`; False when the server does not build that
    index type (milvus-lite served over gRPC looks like a cluster until it refuses)."""
    from pymilvus import MilvusException

    try:
        store.reindex(MilvusIndexOptions(index_type=candidate.index_type,
                                         build_params=candidate.build_params))
    except MilvusException as exc:
        if "index type" not in exc.message.lower():
            raise
        return False
    return True


def _best(store: MilvusCollection, options: list[MilvusCandidate], queries: np.ndarray,
          truth: np.ndarray, target: float, k: int, unsupported: list[str]) -> MilvusChoice:
    tried: list[Trial] = []
    best: MilvusChoice | None = None
    for candidate in options:
        started = time.perf_counter()
        if not _reindex(store, candidate):
            unsupported.append(candidate.index_type)
            continue
        seconds = time.perf_counter() - started
        trials = _tune(candidate, store, queries, truth, target, k)
        tried += trials
        last = trials[-1]
        met = last.recall >= target
        choice = IndexChoice(candidate.label(), last.params, last.recall,
                             _qps(store, queries, k, last.params), candidate.bytes_per_vector,
                             seconds, met)
        if best is None or better_choice(choice, best.choice):
            best = MilvusChoice(MilvusIndexOptions(
                index_type=candidate.index_type, build_params=candidate.build_params,
                search_params={key: int(v) for key, v in last.params.items()}), choice,
                unsupported)
    assert best is not None, "FLAT is always a candidate"
    best.choice.tried = tried
    return best

