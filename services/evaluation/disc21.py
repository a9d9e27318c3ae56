"""`evaluate --benchmark disc21 --data DIR`: a space scored on DISC21-format data (ISC 2021):
recall@1 and mAP over the queries that copy a reference, micro-AP over every query's
top candidates (distractor queries included), as the challenge reports it."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from lookalike.retrieval.evaluation.copydetection import micro_average_precision
from lookalike.retrieval.evaluation.disc21 import load_disc21
from lookalike.services.evaluation.benchmarks import _embed_files, _open
from lookalike.services.evaluation.copies import CopyEvaluation
from lookalike.services.evaluation.records import record_evaluation
from lookalike.services.runtime import Runtime
from lookalike.services.spaces.lookup import find_space

BENCHMARK = "disc21"
TOP_N = 10


def score_disc21(space: str, queries: np.ndarray, references: np.ndarray, truth: np.ndarray,
                 *, times: tuple[float, float]) -> CopyEvaluation:
    """Figures of one run from its vectors and ground truth (-1: a distractor query)."""
    scores = queries @ references.T
    order = np.argsort(-scores, axis=1, kind="stable")
    matched = truth >= 0
    ranks = np.argmax(order[matched] == truth[matched, None], axis=1) + 1
    top = order[:, :TOP_N]
    positives = (top == truth[:, None]).ravel()
    values = np.take_along_axis(scores, top, axis=1).ravel()
    return CopyEvaluation(
        space=space, queries=len(queries), gallery=len(references), verify=False,
        top_n=top.shape[1], map=float(np.mean(1.0 / ranks)) if len(ranks) else 0.0,
        recall_at_1=float(np.mean(ranks == 1)) if len(ranks) else 0.0,
        micro_ap=micro_average_precision(values, positives, int(matched.sum())),
        per_edit={}, embed_seconds=times[0], search_seconds=times[1])


def evaluate_disc21(runtime: Runtime, *, space_name: str | None, data: Path,
                    limit: int | None = None) -> CopyEvaluation:
    """Embed DISC21's references and (the first `limit`) queries in the space and score."""
    with runtime.session() as session:
        space = find_space(session=session, name=space_name)
        session.expunge(space)
    started = time.perf_counter()
    truth = load_disc21(data, limit=limit)
    embedder = runtime.embedder(space)
    references = _embed_files(embedder, (_open(p) for p in truth.references),
                              len(truth.references))
    queries = _embed_files(embedder, (_open(p) for p in truth.queries), len(truth.queries))
    embedded = time.perf_counter()
    result = score_disc21(space.name, queries, references, np.array(truth.truth),
                          times=(embedded - started, 0.0))
    result.search_seconds = time.perf_counter() - embedded
    record_evaluation(runtime, space_id=space.id, benchmark=BENCHMARK, map_score=result.map,
                      figures=result.to_public())
    return result
