"""The copies benchmark run on a space, and its "is a copy" thresholds fitted and stored.

The thresholds are fitted on the verified run's (query, candidate) pairs for a target
precision: the lowest inlier count, then the lowest margin by which a query's top result
must clear its MARGIN_RANK-th best score (on the top results the inliers leave), and the
lowest similarity score alone (what `duplicates` clusters at). A score threshold of its own
did not carry over to photos it was not fitted on (held-out precision 0.80: the highest
wrong score of some photos is another's copy score); a margin over the query's own
unrelated results does. The space stores them (options.copy_calibration) and every search
result then carries `is_copy`. What they keep on the pairs they were fitted on is
optimistic; the held-out figures come from two folds by original photo (fit on one half of
the photos, call the other half's pairs, pooled), with the pairs called wrongly there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from lookalike.retrieval.evaluation.copydetection import fit_threshold
from lookalike.services.catalog import spaces as space_queries
from lookalike.services.catalog.documents import CopyCalibration
from lookalike.services.evaluation.copies import (
    Candidates,
    CopyEvaluation,
    CopyQueries,
    run_copies,
)
from lookalike.services.evaluation.records import record_evaluation
from lookalike.services.runtime import Runtime
from lookalike.services.search.verify import CHANCE_INLIERS, copy_calls
from lookalike.services.spaces.lookup import find_space

BENCHMARK = "copies"
# The top result's score is measured against the 5th best: a catalog may hold a few copies
# of one photo, which all score alike, while unrelated results crowd at one level below.
MARGIN_RANK = 5
# Thresholds are stored rounded down to this many decimals: the pairs they were fitted on
# stay called, and the rule reads the same wherever it is printed or compared.
DECIMALS = 4
# No cosine margin reaches this: what is stored when no margin keeps the target precision.
NO_MARGIN = 2.0


@dataclass(frozen=True)
class Pairs:
    """Every (query, candidate) pair of a run, flattened: its score, inliers (-1: not
    verified), whether it is the query's original, whether it is the query's top result,
    and the query's MARGIN_RANK-th best score (NaN with fewer candidates)."""

    scores: np.ndarray
    inliers: np.ndarray
    positives: np.ndarray
    top: np.ndarray
    reference: np.ndarray

    @classmethod
    def of(cls, found: Candidates, owners: np.ndarray) -> Pairs:
        shape = found.ids.shape
        reference = (np.sort(found.scores, axis=1)[:, -MARGIN_RANK].astype(np.float64)
                     if shape[1] >= MARGIN_RANK else np.full(shape[0], np.nan))
        return cls(found.scores.astype(np.float64).ravel(), found.inliers.ravel(),
                   (found.ids == owners[:, None]).ravel(),
                   (np.arange(shape[1]) == 0)[None, :].repeat(shape[0], axis=0).ravel(),
                   reference.repeat(shape[1]))

    def called(self, calibration: CopyCalibration) -> np.ndarray:
        """The pairs the calibration calls copies."""
        return copy_calls(calibration, self.scores, self.inliers, top=self.top,
                          reference=self.reference)


def _floor(value: float) -> float:
    return math.floor(value * 10.0**DECIMALS) / 10.0**DECIMALS


def _margin(pairs: Pairs, inlier_threshold: int, total: int, *,
            target_precision: float) -> float:
    """The lowest margin over the reference score that keeps the target precision among
    the top results the inliers leave uncalled (so the union keeps it too)."""
    rest = pairs.top & (pairs.inliers < inlier_threshold) & np.isfinite(pairs.reference)
    if not rest.any():
        return NO_MARGIN
    margins = pairs.scores[rest] - pairs.reference[rest]
    fitted = fit_threshold(margins, pairs.positives[rest], total,
                           target_precision=target_precision)
    return min(NO_MARGIN, _floor(fitted.value))


def fit_calibration(found: Candidates, owners: np.ndarray, *,
                    target_precision: float) -> CopyCalibration:
    """Thresholds for the target precision over these queries (`owners`: each one's
    original), with what they keep on them: the inlier count (never below chance level,
    whatever a small run suggests), then the top result's margin over the MARGIN_RANK-th
    best score on the top results the inliers leave. The score threshold alone (used by
    `duplicates`) is fitted too, but the space's decision is inliers or margin."""
    pairs, total = Pairs.of(found, owners), len(owners)
    by_score = fit_threshold(pairs.scores, pairs.positives, total,
                             target_precision=target_precision)
    by_inliers = fit_threshold(pairs.inliers.astype(np.float64), pairs.positives, total,
                               target_precision=target_precision)
    inlier_threshold = max(CHANCE_INLIERS, int(np.ceil(by_inliers.value)))
    calibration = CopyCalibration(
        score_threshold=_floor(by_score.value), inlier_threshold=inlier_threshold,
        margin_threshold=_margin(pairs, inlier_threshold, total,
                                 target_precision=target_precision),
        margin_rank=MARGIN_RANK, target_precision=target_precision, benchmark=BENCHMARK,
        pairs=len(pairs.positives), precision=round(by_score.precision, 4),
        recall=round(by_score.recall, 4), precision_verified=0.0, recall_verified=0.0)
    called = pairs.called(calibration)
    hits = int((called & pairs.positives).sum())
    return calibration.model_copy(update={
        "precision_verified": round(hits / max(1, int(called.sum())), 4),
        "recall_verified": round(hits / total, 4)})


def _rows(found: Candidates, rows: np.ndarray) -> Candidates:
    return Candidates(found.ids[rows], found.scores[rows], found.inliers[rows],
                      found.original_rank[rows])


@dataclass(frozen=True)
class FalsePositive:
    """A held-out pair called a copy that is not the query's original."""

    query: int
    result: int
    score: float
    inliers: int
    margin: float


@dataclass(frozen=True)
class HeldOut:
    """The verified rule's precision and recall on photos it was not fitted on, and the
    pairs it called wrongly there."""

    precision: float
    recall: float
    false_positives: list[FalsePositive]


def held_out(found: Candidates, owners: np.ndarray, *, target_precision: float) -> HeldOut:
    """The rule on photos it was not fitted on: two folds by original photo, each fitted on
    one and called on the other, the calls pooled."""
    called_total = hits = 0
    wrong: list[FalsePositive] = []
    for fold in (0, 1):
        fit, check = owners % 2 != fold, owners % 2 == fold
        calibration = fit_calibration(_rows(found, fit), owners[fit],
                                      target_precision=target_precision)
        pairs = Pairs.of(_rows(found, check), owners[check])
        called = pairs.called(calibration)
        called_total += int(called.sum())
        hits += int((called & pairs.positives).sum())
        wrong += _false_positives(found, np.flatnonzero(check), pairs, called)
    return HeldOut(round(hits / called_total, 4) if called_total else 1.0,
                   round(hits / len(owners), 4), sorted(wrong, key=lambda w: w.query))


def _false_positives(found: Candidates, queries: np.ndarray, pairs: Pairs,
                     called: np.ndarray) -> list[FalsePositive]:
    """The called pairs that are not originals, by query row (in `found`) and gallery row."""
    columns = found.ids.shape[1]
    return [FalsePositive(query=int(queries[i // columns]),
                          result=int(found.ids[queries[i // columns], i % columns]),
                          score=round(float(pairs.scores[i]), 4),
                          inliers=int(pairs.inliers[i]),
                          margin=round(float(pairs.scores[i] - pairs.reference[i]), 4))
            for i in np.flatnonzero(called & ~pairs.positives)]


def describe(wrong: FalsePositive, data: CopyQueries) -> dict[str, Any]:
    """A false positive as a person reads it: which copy of which photo, which result."""
    owner = int(data.owners[wrong.query])
    result = (data.names[wrong.result] if wrong.result < len(data.names)
              else f"distractor {wrong.result - len(data.names)}")
    return {"query": f"{data.names[owner]} ({data.edits[wrong.query]})", "result": result,
            "score": wrong.score, "inliers": wrong.inliers, "margin": wrong.margin}


def evaluate_copies(runtime: Runtime, *, space_name: str | None, verify: bool = False,
                    calibrate: bool = False, target_precision: float = 0.99,
                    distractors: int = 5000, photos: int | None = None,
                    top_n: int | None = None) -> CopyEvaluation:
    """Run the copies benchmark on a space (verified when asked or when calibrating), record
    it, and with `calibrate` store the fitted thresholds on the space."""
    with runtime.session() as session:
        space = find_space(session=session, name=space_name)
        session.expunge(space)
    verify = verify or calibrate
    result, found, data = run_copies(runtime.embedder(space), space.name,
                                     distractors=distractors, photos=photos, verify=verify,
                                     top_n=top_n or space.options.verify_n)
    if calibrate:
        calibration = fit_calibration(found, data.owners, target_precision=target_precision)
        checked = held_out(found, data.owners, target_precision=target_precision)
        calibration = calibration.model_copy(update={"held_out_precision": checked.precision,
                                                     "held_out_recall": checked.recall})
        result.held_out_false_positives = [describe(w, data) for w in checked.false_positives]
        options = space.options.model_copy(update={"copy_calibration": calibration})
        with runtime.session() as session:
            space_queries.set_space_options(session=session, space_id=space.id, options=options)
            session.commit()
        result.calibration = calibration.model_dump()
        result.notes.append("thresholds fitted on these very pairs: their precision and "
                            "recall are optimistic; the held-out ones come from two folds by "
                            "original photo")
    record_evaluation(runtime, space_id=space.id, benchmark=BENCHMARK, map_score=result.map,
                      figures=result.to_public())
    return result
