"""Choosing a FAISS index for a target recall within a memory budget, tuned on held-out queries.

Candidates are tried fastest-first for the collection's size; each one's search knob (IVF
nprobe, HNSW efSearch) is raised until recall@k against exact search reaches the target on
the held-out queries. Of those that reach it within the budget the fastest (batched queries
per second) wins; the search stops at the first that reaches it without scanning every list.
When none reaches it, the one with the best recall is returned with `meets_target` False.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import faiss
import numpy as np

from lookalike.retrieval.errors import IndexShapeError
from lookalike.retrieval.evaluation.metrics import ann_recall_at_k
from lookalike.retrieval.index.faiss_index import SearchParams, VectorIndex

FLAT_UP_TO = 50_000
HNSW_UP_TO = 300_000
# k-means sees 256 vectors per IVF list (FAISS's upper guideline): with 40, lists came out
# unbalanced and clusters split, so the same recall needed 8x the probes (`bench index`).
_TRAIN_PER_LIST = 256
_QPS_ROUNDS = 3
# Fast-scan PQ ranks the probed lists by 4-bit codes; the best RERANK_FACTOR * k of them are
# re-scored with the exact vectors. Near ties (many similar images) need a generous factor.
RERANK_FACTOR = 32


@dataclass(frozen=True)
class Candidate:
    """A factory string, its search knob and values to try, its memory per vector, and search
    parameters it always uses."""

    factory: str
    knob: str | None
    values: tuple[int, ...]
    bytes_per_vector: int
    fixed: SearchParams = field(default_factory=dict)


@dataclass
class Trial:
    factory: str
    params: SearchParams
    recall: float


@dataclass
class IndexChoice:
    """The chosen index type, its search parameters and what was measured on held-out queries."""

    factory: str
    params: SearchParams
    recall: float
    qps: float
    bytes_per_vector: float
    train_seconds: float
    meets_target: bool
    tried: list[Trial] = field(default_factory=list)


def ivf_lists(n: int) -> int:
    """IVF list count: the power of two nearest sqrt(n), within 16..65536."""
    return int(min(65536, max(16, 2 ** round(math.log2(math.sqrt(max(n, 1)))))))


def candidates(n: int, dim: int, max_bytes: int) -> list[Candidate]:
    """Index types worth trying for n vectors of dim, fastest first, that fit `max_bytes`."""
    nlist = ivf_lists(n)
    probes = tuple(p for p in (1, 2, 4, 8, 16, 32, 64, 128, 256, 512) if p <= nlist)
    flat = Candidate("Flat", None, (), 4 * dim + 8)
    pq_m = next(m for m in (dim // 2, dim // 4, dim // 8, 8, 4, 2, 1) if m >= 1 and dim % m == 0)
    found = [flat] if n <= FLAT_UP_TO else []
    if dim % 8 == 0:  # 4-bit fast-scan PQ codes: 2 dims per sub-quantizer, an even count
        codes = dim // 4
        found.append(Candidate(f"IVF{nlist},PQ{codes}x4fs,RFlat", "nprobe", probes,
                               4 * dim + codes // 2 + 16, {"k_factor": RERANK_FACTOR}))
    found.append(Candidate(f"IVF{nlist},Flat", "nprobe", probes, 4 * dim + 16))
    if n <= HNSW_UP_TO:
        found.append(Candidate("HNSW32", "efSearch", (16, 32, 64, 128, 256, 512),
                               4 * dim + 8 + 32 * 2 * 4 * 2))
    found.append(Candidate(f"OPQ{pq_m},IVF{nlist},PQ{pq_m}", "nprobe", probes, pq_m + 16))
    if n > FLAT_UP_TO:
        found.append(flat)
    return [c for c in found if c.bytes_per_vector * n <= max_bytes]


def exact_top_k(base: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Exact top-k row numbers by inner product (FAISS brute force, all cores)."""
    exact = faiss.IndexFlatIP(base.shape[1])
    exact.add(base)
    return exact.search(queries, k)[1]


def _built(candidate: Candidate, base: np.ndarray) -> tuple[VectorIndex, float]:
    """The candidate trained on a sample of `base` and filled with it; training seconds."""
    index = VectorIndex(base.shape[1], factory=candidate.factory)
    started = time.perf_counter()
    if not index.is_trained:
        nlist = ivf_lists(len(base))
        sample = np.random.default_rng(0).permutation(len(base))[: _TRAIN_PER_LIST * nlist]
        index.train(base[np.sort(sample)])
    index.add(np.arange(len(base), dtype=np.int64), base)
    return index, time.perf_counter() - started


def measure_qps(index: VectorIndex, queries: np.ndarray, k: int,
                params: SearchParams) -> float:
    """Queries per second of one batched search call, best of a few rounds."""
    return queries_per_second(lambda: index.search(queries, k, params=params), len(queries))


def queries_per_second(search: Callable[[], object], queries: int) -> float:
    """`queries` / the best of a few timed calls of `search` (one batched search): shared by
    every backend's index choice, so their figures compare."""
    best = math.inf
    for _ in range(_QPS_ROUNDS):
        started = time.perf_counter()
        search()
        best = min(best, time.perf_counter() - started)
    return queries / best


def serialized_bytes(index: VectorIndex) -> int:
    """Size of the index as written to disk (vectors or codes, ids, structure)."""
    sizes = []

    class _Counter:
        def write(self, data: bytes) -> int:
            sizes.append(len(data))
            return len(data)

    index.write_to(_Counter())
    return sum(sizes)


def _tune(candidate: Candidate, index: VectorIndex, queries: np.ndarray, truth: np.ndarray,
          target: float, k: int) -> list[Trial]:
    settings = ([dict(candidate.fixed)] if candidate.knob is None
                else [{**candidate.fixed, candidate.knob: v} for v in candidate.values])
    return sweep(candidate.factory, settings,
                 lambda params: index.search(queries, k, params=params).ids, truth, target)


def sweep(label: str, settings: list[SearchParams], search: Callable[[SearchParams], np.ndarray],
          truth: np.ndarray, target: float) -> list[Trial]:
    """Trials of `settings` in order (a rising search knob): each one's recall of `truth` by
    the ids `search(params)` returns, stopping at the first that reaches `target`."""
    trials = []
    for params in settings:
        recall = ann_recall_at_k(search(params), truth)
        trials.append(Trial(label, params, recall))
        if recall >= target:
            break
    return trials


def choose_index(base: np.ndarray, queries: np.ndarray, *, target_recall: float = 0.95,
                 max_bytes: int = 4 * 2**30, k: int = 10) -> tuple[VectorIndex, IndexChoice]:
    """The fastest candidate reaching `target_recall`@k on held-out `queries` within the budget.

    The returned index holds `base` under ids 0..N-1; callers add the held-out queries.
    """
    if base.ndim != 2 or queries.ndim != 2 or base.shape[1] != queries.shape[1]:
        raise IndexShapeError(f"base (N, D) and queries (Q, D) must share D; got {base.shape} "
                              f"and {queries.shape}")
    options = candidates(len(base), base.shape[1], max_bytes)
    if not options:
        need = (base.shape[1] // 8 + 16) * len(base)
        raise IndexShapeError(f"no index type fits {len(base)} vectors of dim {base.shape[1]} in "
                              f"{max_bytes} bytes; allow at least {need} bytes")
    truth = exact_top_k(base, queries, k)
    tried: list[Trial] = []
    best: tuple[VectorIndex, IndexChoice] | None = None
    for candidate in options:
        index, seconds = _built(candidate, base)
        trials = _tune(candidate, index, queries, truth, target_recall, k)
        tried += trials
        last = trials[-1]
        met = last.recall >= target_recall
        choice = IndexChoice(candidate.factory, last.params, last.recall,
                             measure_qps(index, queries, k, last.params) if met else 0.0,
                             0.0, seconds, met)
        if best is None or better_choice(choice, best[1]):
            best = (index, choice)
        if met and (candidate.knob is None or len(trials) < len(candidate.values)):
            break
    assert best is not None, "options is not empty: checked above"
    index, choice = best
    if not choice.meets_target:
        choice.qps = measure_qps(index, queries, k, choice.params)
    choice.bytes_per_vector = serialized_bytes(index) / max(1, index.ntotal)
    choice.tried = tried
    return index, choice


def better_choice(new: IndexChoice, old: IndexChoice) -> bool:
    """Meeting the target beats missing it; then more queries/s; short of it, more recall."""
    if new.meets_target != old.meets_target:
        return new.meets_target
    return new.qps > old.qps if new.meets_target else new.recall > old.recall


def clustered_vectors(n: int, dim: int, *, clusters: int = 1000, spread: float = 1.0,
                      seed: int = 0) -> np.ndarray:
    """Synthetic unit vectors around random centres, like embeddings of many visual themes."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim), dtype=np.float32)
    out = np.empty((n, dim), dtype=np.float32)
    step = 100_000
    for start in range(0, n, step):
        stop = min(n, start + step)
        rows = centres[rng.integers(0, clusters, stop - start)]
        rows += spread * rng.standard_normal(rows.shape, dtype=np.float32)
        out[start:stop] = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    return out
