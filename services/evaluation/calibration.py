"""The copies benchmark run on a space, and its "is a copy" thresholds fitted and stored.

The thresholds are fitted on the verified run's (query, top candidate) pairs: the lowest
similarity score, and the lowest inlier count, that each keep the target precision. The space
stores them (options.copy_calibration) and every search result then carries `is_copy`. What
they keep on the pairs they were fitted on is optimistic; the held-out figures come from two
folds by original photo (fit on one half of the photos, call the other half's pairs, pooled).
"""

from __future__ import annotations

import numpy as np

from lookalike.retrieval.evaluation.copydetection import fit_threshold
from lookalike.services.catalog import spaces as space_queries
from lookalike.services.catalog.documents import CopyCalibration
from lookalike.services.evaluation.copies import Candidates, CopyEvaluation, run_copies
from lookalike.services.evaluation.records import record_evaluation
from lookalike.services.runtime import Runtime
from lookalike.services.search.verify import CHANCE_INLIERS
from lookalike.services.spaces.lookup import find_space

BENCHMARK = "copies"


def _pairs(found: Candidates, owners: np.ndarray
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each (query, candidate) pair's score, inliers and whether it is the query's original."""
    return (found.scores.ravel(), found.inliers.ravel().astype(np.float64),
            (found.ids == owners[:, None]).ravel())


def _called(calibration: CopyCalibration, scores: np.ndarray, inliers: np.ndarray
            ) -> np.ndarray:
    return (scores >= calibration.score_threshold) | (inliers >= calibration.inlier_threshold)


def fit_calibration(found: Candidates, owners: np.ndarray, *,
                    target_precision: float) -> CopyCalibration:
    """Score and inlier thresholds for the target precision over these queries (`owners`:
    each one's original), with what the rule keeps on them; the inlier threshold is never
    below chance level, whatever a small run suggests."""
    scores, inliers, positives = _pairs(found, owners)
    total = len(owners)
    by_score = fit_threshold(scores, positives, total, target_precision=target_precision)
    by_inliers = fit_threshold(inliers, positives, total, target_precision=target_precision)
    inlier_threshold = max(CHANCE_INLIERS, int(np.ceil(by_inliers.value)))
    calibration = CopyCalibration(
        score_threshold=round(by_score.value, 6), inlier_threshold=inlier_threshold,
        target_precision=target_precision, benchmark=BENCHMARK, pairs=len(positives),
        precision=round(by_score.precision, 4), recall=round(by_score.recall, 4),
        precision_verified=0.0, recall_verified=0.0)
    called = _called(calibration, scores, inliers)
    hits = int((called & positives).sum())
    return calibration.model_copy(update={
        "precision_verified": round(hits / max(1, int(called.sum())), 4),
        "recall_verified": round(hits / total, 4)})


def _rows(found: Candidates, rows: np.ndarray) -> Candidates:
    return Candidates(found.ids[rows], found.scores[rows], found.inliers[rows],
                      found.original_rank[rows])


def held_out(found: Candidates, owners: np.ndarray, *,
             target_precision: float) -> tuple[float, float]:
    """(precision, recall) of the verified rule on photos it was not fitted on: two folds by
    original photo, each fitted on one and called on the other, the calls pooled."""
    called_total = hits = 0
    for fold in (0, 1):
        fit, check = owners % 2 != fold, owners % 2 == fold
        calibration = fit_calibration(_rows(found, fit), owners[fit],
                                      target_precision=target_precision)
        scores, inliers, positives = _pairs(_rows(found, check), owners[check])
        called = _called(calibration, scores, inliers)
        called_total += int(called.sum())
        hits += int((called & positives).sum())
    return (round(hits / called_total, 4) if called_total else 1.0,
            round(hits / len(owners), 4))


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
        precision, recall = held_out(found, data.owners, target_precision=target_precision)
        calibration = calibration.model_copy(update={"held_out_precision": precision,
                                                     "held_out_recall": recall})
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
