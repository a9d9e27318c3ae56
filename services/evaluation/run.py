"""`lookalike evaluate`: retrieval quality of a space on a benchmark, and its ANN index's recall."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from lookalike.retrieval.embedding.expansion import (
    alpha_query_expansion,
    database_side_augmentation,
)
from lookalike.retrieval.evaluation.metrics import (
    ann_recall_at_k,
    exact_search,
    mean_pr_curve,
    score_rankings,
)
from lookalike.retrieval.index.faiss_index import VectorIndex
from lookalike.services.catalog.models import Space
from lookalike.services.errors import InvalidRequest
from lookalike.services.evaluation import benchmarks
from lookalike.services.evaluation.benchmarks import BENCHMARKS, Benchmark
from lookalike.services.evaluation.records import record_evaluation
from lookalike.services.runtime import Runtime
from lookalike.services.spaces.lookup import find_space

KS = (1, 10, 100)
_BLOCK = 256
_PR_POINTS = 21


@dataclass
class EvaluationResult:
    """What `lookalike evaluate` prints: quality figures, ANN recall, sizes and times."""

    space: str
    benchmark: str
    queries: int
    gallery: int
    map: float
    precision: dict[int, float]
    recall: dict[int, float]
    ann_recall_at_10: float
    index_factory: str
    qe: bool
    dba_n: int
    embed_seconds: float
    search_seconds: float
    pr_recall: list[float] = field(default_factory=list)
    pr_precision: list[float] = field(default_factory=list)
    baseline_map: float | None = None
    notes: list[str] = field(default_factory=list)

    def to_public(self) -> dict:
        data = asdict(self)
        for key in ("map", "ann_recall_at_10", "embed_seconds", "search_seconds", "baseline_map"):
            if data[key] is not None:
                data[key] = round(data[key], 4)
        data["precision"] = {str(k): round(v, 4) for k, v in self.precision.items()}
        data["recall"] = {str(k): round(v, 4) for k, v in self.recall.items()}
        return data


@dataclass
class _Totals:
    """Query-weighted sums over blocks of queries."""

    queries: int = 0
    map: float = 0.0
    precision: dict[int, float] = field(default_factory=lambda: dict.fromkeys(KS, 0.0))
    recall: dict[int, float] = field(default_factory=lambda: dict.fromkeys(KS, 0.0))
    curve: np.ndarray = field(default_factory=lambda: np.zeros(_PR_POINTS))


def _ranked(queries: np.ndarray, gallery: np.ndarray, start: int, leave_one_out: bool):
    """Full rankings of one block of queries, best first; self excluded in leave-one-out."""
    scores = queries @ gallery.T
    if leave_one_out:
        scores[np.arange(len(scores)), np.arange(start, start + len(scores))] = -np.inf
    order = np.argsort(-scores, axis=1, kind="stable")
    return order[:, : gallery.shape[0] - int(leave_one_out)]


def score_benchmark(bench: Benchmark, queries: np.ndarray) -> tuple[_Totals, np.ndarray]:
    """mAP, P@k, R@k and the PR curve over every query, by blocks; and the curve's levels."""
    totals, levels = _Totals(), np.linspace(0, 1, _PR_POINTS)
    for start in range(0, len(queries), _BLOCK):
        stop = min(start + _BLOCK, len(queries))
        rankings = _ranked(queries[start:stop], bench.gallery, start, bench.leave_one_out)
        relevance, junk = bench.block(start, stop)
        scores = score_rankings(rankings, relevance, ks=KS, junk=junk)
        levels, curve = mean_pr_curve(rankings, relevance, points=_PR_POINTS, junk=junk)
        totals.queries += scores.queries
        totals.map += scores.map * scores.queries
        totals.curve += curve * scores.queries
        for k in KS:
            totals.precision[k] += scores.precision[k] * scores.queries
            totals.recall[k] += scores.recall[k] * scores.queries
    return totals, levels


def _expand(bench: Benchmark, *, qe_n: int | None, dba_n: int, alpha: float) -> np.ndarray:
    """Apply DBA to the gallery (in place) and αQE to the queries; returns the queries."""
    if dba_n > 0:
        scores, idx = exact_search(bench.gallery, bench.gallery, dba_n, exclude_self=True)
        bench.gallery = database_side_augmentation(bench.gallery, idx, scores, alpha=alpha)
        if bench.leave_one_out:
            bench.queries = bench.gallery
    queries = bench.queries
    if qe_n:
        scores, idx = exact_search(queries, bench.gallery, qe_n, exclude_self=bench.leave_one_out)
        neighbours = bench.gallery[np.where(idx >= 0, idx, 0)]
        queries = alpha_query_expansion(queries, neighbours, np.where(idx >= 0, scores, 0.0),
                                        alpha=alpha)
    return queries


def ann_recall(space: Space, bench: Benchmark, queries: np.ndarray, k: int = 10) -> float:
    """Recall@k of the space's FAISS index type against exact search on this gallery."""
    index = VectorIndex(bench.gallery.shape[1],
                        factory=space.options.index_factory)
    if not index.is_trained:
        index.train(bench.gallery)
    index.add(np.arange(len(bench.gallery), dtype=np.int64), bench.gallery)
    fetch = k + int(bench.leave_one_out)
    approx = index.search(queries, fetch, params=space.options.search_params).ids
    _, exact = exact_search(queries, bench.gallery, fetch)
    return ann_recall_at_k(approx, exact)


def _build(runtime: Runtime, space: Space, name: str, data: Path | None,
           limit: int | None, protocol: str) -> Benchmark:
    if name not in BENCHMARKS:
        raise InvalidRequest(f"unknown benchmark '{name}'; available: {', '.join(BENCHMARKS)}")
    if name == "labels":
        return benchmarks.labels_benchmark(runtime, space, limit=limit)
    embedder = runtime.embedder(space)
    if name == "fashion-mnist":
        return benchmarks.fashion_benchmark(embedder, limit=limit)
    if name == "near-duplicates":
        return benchmarks.near_duplicate_benchmark(embedder, limit=limit)
    if data is None:
        raise InvalidRequest(f"benchmark '{name}' reads its images and ground truth from a "
                             "folder: give --data DIR")
    if name == "holidays":
        return benchmarks.holidays_benchmark(embedder, data=data, limit=limit)
    return benchmarks.revisited_benchmark(embedder, name=name, data=data, protocol=protocol,
                                          limit=limit)


def evaluate(runtime: Runtime, *, space_name: str | None, benchmark: str,
             data: Path | None = None, limit: int | None = None, qe: bool | None = None,
             dba_n: int | None = None, protocol: str = "medium") -> EvaluationResult:
    """Embed the benchmark in the space, rank every gallery item for every query, score it."""
    with runtime.session() as session:
        space = find_space(session=session, name=space_name)
        session.expunge(space)
    started = time.perf_counter()
    bench = _build(runtime, space, benchmark, data, limit, protocol)
    embedded = time.perf_counter()
    use_qe = space.options.qe if qe is None else qe
    dba = space.options.dba_n if dba_n is None else dba_n
    queries = _expand(bench, qe_n=space.options.qe_n if use_qe else None,
                      dba_n=dba, alpha=space.options.qe_alpha)
    totals, levels = score_benchmark(bench, queries)
    recall = ann_recall(space, bench, queries)
    n = totals.queries
    result = EvaluationResult(
        space=space.name, benchmark=benchmark, queries=len(queries), gallery=len(bench.gallery),
        map=totals.map / n, precision={k: v / n for k, v in totals.precision.items()},
        recall={k: v / n for k, v in totals.recall.items()}, ann_recall_at_10=recall,
        index_factory=space.options.index_factory, qe=use_qe, dba_n=dba,
        embed_seconds=embedded - started, search_seconds=time.perf_counter() - embedded,
        pr_recall=levels.tolist(), pr_precision=(totals.curve / n).tolist(),
        baseline_map=_baseline(benchmark, limit), notes=_caveats(space, benchmark))
    record_evaluation(runtime, space_id=space.id, benchmark=benchmark, map_score=result.map,
                      figures=result.to_public())
    return result


def _caveats(space: Space, benchmark: str) -> list[str]:
    """What makes a figure optimistic: a whitening learned from the labels it is scored on."""
    if (benchmark == "labels" and space.options.whitening_method == "learned"
            and space.options.whitening_from == "catalog"):
        return [f"space {space.name}'s whitening was learned from the catalog's labels, which "
                "this benchmark scores: its figures are optimistic; learn it from other "
                "images (--whiten-from) to compare fairly"]
    return []


def _baseline(benchmark: str, limit: int | None) -> float | None:
    """The raw-pixels mAP of Fashion-MNIST on the same subset (None for other benchmarks)."""
    if benchmark != "fashion-mnist":
        return None
    queries, query_labels, gallery, gallery_labels = benchmarks.fashion_split(limit)
    bench = Benchmark("raw-pixels", benchmarks.raw_pixels(queries),
                      benchmarks.raw_pixels(gallery), query_labels=query_labels,
                      gallery_labels=gallery_labels)
    totals, _ = score_benchmark(bench, bench.queries)
    return totals.map / totals.queries
