"""Micro-average precision and threshold fitting on hand-checked pair lists."""

from __future__ import annotations

import numpy as np
import pytest

from lookalike.retrieval.errors import EvaluationError
from lookalike.retrieval.evaluation.copydetection import (
    fit_threshold,
    micro_average_precision,
    precision_recall_at,
)

VALUES = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
POSITIVES = np.array([True, True, False, True, False, False])


def test_micro_ap_by_hand() -> None:
    # hits at ranks 1, 2, 4: (1 + 1 + 3/4) / 4 true copies (one never retrieved)
    assert micro_average_precision(VALUES, POSITIVES, 4) == pytest.approx(2.75 / 4)
    assert micro_average_precision(VALUES, POSITIVES, 3) == pytest.approx(2.75 / 3)


def test_precision_recall_at_a_threshold() -> None:
    assert precision_recall_at(VALUES, POSITIVES, 4, 0.6) == pytest.approx((0.75, 0.75))
    assert precision_recall_at(VALUES, POSITIVES, 4, 0.95) == (1.0, 0.0)


def test_fit_keeps_the_most_recall_at_the_target() -> None:
    strict = fit_threshold(VALUES, POSITIVES, 4, target_precision=0.99)
    assert (strict.value, strict.precision, strict.recall) == (0.8, 1.0, 0.5)
    # at 0.7 the precision of 0.6 (3/4) is met but that of 0.7 (2/3) is not: stay at 0.8
    middle = fit_threshold(VALUES, POSITIVES, 4, target_precision=0.7)
    assert middle.value == 0.8
    loose = fit_threshold(VALUES, POSITIVES, 4, target_precision=0.65)
    assert (loose.value, loose.precision, loose.recall) == (0.6, 0.75, 0.75)


def test_ties_are_never_split_and_no_threshold_means_no_copy() -> None:
    tied = fit_threshold(np.array([1.0, 1.0, 0.5]), np.array([True, False, True]), 2,
                         target_precision=0.9)
    assert tied.recall == 0.0 and tied.value > 1.0
    assert precision_recall_at(np.array([1.0, 1.0, 0.5]), np.array([True, False, True]), 2,
                               tied.value) == (1.0, 0.0)


def test_bad_input_is_rejected() -> None:
    with pytest.raises(EvaluationError, match="same length"):
        micro_average_precision(VALUES, POSITIVES[:2], 4)
    with pytest.raises(EvaluationError, match="below"):
        fit_threshold(VALUES, POSITIVES, 1, target_precision=0.9)
    with pytest.raises(EvaluationError, match="target precision"):
        fit_threshold(VALUES, POSITIVES, 4, target_precision=0.0)
