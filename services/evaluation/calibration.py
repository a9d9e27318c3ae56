"""The copies benchmark run on a space, and its "is a copy" thresholds fitted and stored.

The thresholds are fitted on the verified run's (query, top candidate) pairs: the lowest
similarity score, and the lowest inlier count, that each keep the target precision. The space
stores them (options.copy_calibration) and every search result then carries `is_copy`.
"""

from __future__ import annotations

import numpy as np

from lookalike.retrieval.evaluation.copydetection import fit_threshold, precision_recall_at
from lookalike.services.catalog import spaces as space_queries
from lookalike.services.catalog.documents import CopyCalibration
from lookalike.services.evaluation.copies import Candidates, CopyEvaluation, CopyQueries, run_copies
from lookalike.services.evaluation.records import record_evaluation
from lookalike.services.runtime import Runtime
from lookalike.services.search.verify import CHANCE_INLIERS
from lookalike.services.spaces.lookup import find_space

BENCHMARK = "copies"


def fit_calibration(found: Candidates, data: CopyQueries, *,
                    target_precision: float) -> CopyCalibration:
    """Score and inlier thresholds for the target precision, with what the rule keeps; the
    inlier threshold is never below chance level, whatever a small run suggests."""
    positives = (found.ids == data.owners[:, None]).ravel()
    scores, inliers = found.scores.ravel(), found.inliers.ravel().astype(np.float64)
    total = len(data.images)
    by_score = fit_threshold(scores, positives, total, target_precision=target_precision)
    by_inliers = fit_threshold(inliers, positives, total, target_precision=target_precision)
    inlier_threshold = max(CHANCE_INLIERS, int(np.ceil(by_inliers.value)))
    called = (scores >= by_score.value) | (inliers >= inlier_threshold)
    hits = int((called & positives).sum())
    return CopyCalibration(
        score_threshold=round(by_score.value, 6), inlier_threshold=inlier_threshold,
        target_precision=target_precision, benchmark=BENCHMARK, pairs=len(positives),
        precision=round(by_score.precision, 4), recall=round(by_score.recall, 4),
        precision_verified=round(hits / max(1, int(called.sum())), 4),
        recall_verified=round(hits / total, 4))


def kept_by(calibration: CopyCalibration, found: Candidates, data: CopyQueries
            ) -> tuple[float, float]:
    """(precision, recall) of a stored calibration's score rule on another run's pairs."""
    positives = (found.ids == data.owners[:, None]).ravel()
    return precision_recall_at(found.scores.ravel(), positives, len(data.images),
                               calibration.score_threshold)


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
        calibration = fit_calibration(found, data, target_precision=target_precision)
        options = space.options.model_copy(update={"copy_calibration": calibration})
        with runtime.session() as session:
            space_queries.set_space_options(session=session, space_id=space.id, options=options)
            session.commit()
        result.calibration = calibration.model_dump()
        result.notes.append("thresholds fitted on these very pairs: the precision and recall "
                            "shown are optimistic; check them on another run")
    record_evaluation(runtime, space_id=space.id, benchmark=BENCHMARK, map_score=result.map,
                      figures=result.to_public())
    return result
