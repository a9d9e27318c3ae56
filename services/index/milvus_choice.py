"""Choosing a Milvus space's index type and search parameters by measured recall.

The held-out queries' exact top-k is computed here (brute force); the base vectors go once
into a scratch collection, which is re-indexed for each candidate, cheapest in memory first.
Each candidate's search knob (nprobe, ef) rises until recall@k reaches the target; of those
that reach it the fastest in batched queries per second wins, as `choose_index` does for
FAISS. Index types the server lacks (milvus-lite has neither IVF_PQ nor DISKANN) are skipped
and named in the choice."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from lookalike.retrieval.evaluation.metrics import ann_recall_at_k
from lookalike.retrieval.index.choice import IndexChoice, Trial, ivf_lists
from lookalike.services.catalog.documents import MilvusIndexOptions
from lookalike.services.index.milvus_store import LITE_INDEX_TYPES, Entity, MilvusCollection

if TYPE_CHECKING:
    from pymilvus import MilvusClient

_QPS_ROUNDS = 3
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


def _truth(base: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Exact top-k row numbers by inner product."""
    scores = queries @ base.T
    return np.argsort(-scores, axis=1, kind="stable")[:, :k]


def _qps(store: MilvusCollection, queries: np.ndarray, k: int, params: dict[str, int]) -> float:
    """Queries per second of one batched search, best of a few rounds."""
    best = math.inf
    for _ in range(_QPS_ROUNDS):
        started = time.perf_counter()
        store.search(queries, k, params=params)
        best = min(best, time.perf_counter() - started)
    return len(queries) / best


def _tune(candidate: MilvusCandidate, store: MilvusCollection, queries: np.ndarray,
          truth: np.ndarray, target: float, k: int) -> list[Trial]:
    settings = ([{}] if candidate.knob is None
                else [{candidate.knob: max(v, k) if candidate.knob == "ef" else v}
                      for v in candidate.values])
    trials = []
    for params in settings:
        recall = ann_recall_at_k(store.search(queries, k, params=params).ids, truth)
        trials.append(Trial(candidate.label(), dict(params), recall))
        if recall >= target:
            break
    return trials


def choose_milvus_index(client: MilvusClient, scratch: str, base: np.ndarray,
                        queries: np.ndarray, *, target_recall: float, max_bytes: int,
                        lite: bool, k: int = 10) -> MilvusChoice:
    """The fastest index reaching `target_recall`@k on `queries`, measured in a scratch
    collection (dropped afterwards)."""
    options = milvus_candidates(len(base), base.shape[1], max_bytes)
    unsupported = [c.index_type for c in options if lite and c.index_type not in LITE_INDEX_TYPES]
    options = [c for c in options if c.index_type not in unsupported]
    truth = _truth(base, queries, k)
    store = MilvusCollection(client, scratch, base.shape[1])
    store.drop()
    store.create(MilvusIndexOptions(index_type="FLAT"))
    try:
        store.upsert([Entity(i, v, None, None) for i, v in enumerate(base)])
        return _best(store, options, queries, truth, target_recall, k, unsupported)
    finally:
        store.drop()


def _best(store: MilvusCollection, options: list[MilvusCandidate], queries: np.ndarray,
          truth: np.ndarray, target: float, k: int, unsupported: list[str]) -> MilvusChoice:
    tried: list[Trial] = []
    best: MilvusChoice | None = None
    for candidate in options:
        started = time.perf_counter()
        store.reindex(MilvusIndexOptions(index_type=candidate.index_type,
                                         build_params=candidate.build_params))
        seconds = time.perf_counter() - started
        trials = _tune(candidate, store, queries, truth, target, k)
        tried += trials
        last = trials[-1]
        met = last.recall >= target
        choice = IndexChoice(candidate.label(), last.params, last.recall,
                             _qps(store, queries, k, last.params), candidate.bytes_per_vector,
                             seconds, met)
        if best is None or _better(choice, best.choice):
            best = MilvusChoice(MilvusIndexOptions(
                index_type=candidate.index_type, build_params=candidate.build_params,
                search_params={key: int(v) for key, v in last.params.items()}), choice,
                unsupported)
    assert best is not None, "FLAT is always a candidate"
    best.choice.tried = tried
    return best


def _better(new: IndexChoice, old: IndexChoice) -> bool:
    """Meeting the target beats missing it; then more queries/s; short of it, more recall."""
    if new.meets_target != old.meets_target:
        return new.meets_target
    return new.qps > old.qps if new.meets_target else new.recall > old.recall
