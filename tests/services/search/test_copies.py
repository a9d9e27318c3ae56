"""The copy answer shows the thresholds its decision used."""

from __future__ import annotations

from lookalike.services.catalog.documents import CopyCalibration
from lookalike.services.search.copies import CopyAnswer

FITTED = {"score_threshold": 0.74, "inlier_threshold": 10, "target_precision": 0.99,
          "benchmark": "copies", "pairs": 100, "precision": 0.99, "recall": 0.8,
          "precision_verified": 1.0, "recall_verified": 0.9}


def thresholds(calibration: CopyCalibration) -> dict:
    return CopyAnswer(space="s", took_ms=1.0, copies=[],
                      calibration=calibration).to_public()["thresholds"]


def test_a_margin_calibration_shows_its_margin_instead_of_the_score() -> None:
    margin = CopyCalibration.model_validate({**FITTED, "margin_threshold": 0.11,
                                             "margin_rank": 5})
    assert thresholds(margin) == {"inliers": 10, "target_precision": 0.99, "margin": 0.11,
                                  "margin_rank": 5}


def test_an_older_calibration_shows_its_score_threshold() -> None:
    assert thresholds(CopyCalibration.model_validate(FITTED)) == {
        "inliers": 10, "target_precision": 0.99, "score": 0.74}
