"""The copies benchmark on the bundled photos: per-edit figures, verification, calibration."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from lookalike.retrieval.training.copyedits import apply_edit
from lookalike.services.evaluation.calibration import (
    FalsePositive,
    describe,
    evaluate_copies,
    fit_calibration,
    held_out,
)
from lookalike.services.evaluation.copies import EDIT_TYPES, Candidates, copy_queries
from lookalike.services.runtime import Runtime
from lookalike.services.sample import bundled_photos
from lookalike.services.search.query import search_vector
from lookalike.services.spaces.lookup import find_space


def jpeg_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def test_queries_are_deterministic_and_cover_every_edit() -> None:
    first, again = copy_queries(distractors=5, photos=2), copy_queries(distractors=5, photos=2)
    assert first.edits == list(EDIT_TYPES) * 2 and first.owners.tolist() == [0] * 18 + [1] * 18
    for a, b in zip(first.images, again.images, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert first.distractors.shape == (5, 28, 28)


def test_calibrated_run_is_stored_and_decides_search_results(photo_home: Runtime) -> None:
    plain = evaluate_copies(photo_home, space_name=None, distractors=30, photos=3)
    checked = evaluate_copies(photo_home, space_name=None, distractors=30, photos=3,
                              calibrate=True)
    assert set(plain.per_edit) == set(EDIT_TYPES) and plain.queries == 54
    assert not plain.verify and plain.calibration is None
    assert checked.verify and checked.recall_at_1 >= plain.recall_at_1
    assert checked.micro_ap >= plain.micro_ap
    calibration = checked.calibration
    assert calibration is not None and calibration["inlier_threshold"] >= 10
    assert calibration["precision_verified"] >= 0.99
    assert calibration["held_out_precision"] is not None
    with photo_home.session() as session:
        stored = find_space(session=session, name=None).options.copy_calibration
    assert stored is not None and stored.score_threshold == calibration["score_threshold"]
    assert stored.margin_rank == 5 and stored.margin_threshold == calibration["margin_threshold"]
    photo = next(p for p in bundled_photos() if p.name == "coffee")
    query = jpeg_bytes(apply_edit(photo.image, "perspective", 99, strength=0.8))
    results = search_vector(photo_home, space_name=None, k=3, query=query, verify=True).results
    assert results[0].source.endswith("coffee.jpg") and results[0].is_copy
    assert [hit.is_copy for hit in results[1:]] == [False, False]


def synthetic(queries: list[tuple[int, bool, float, float]]) -> tuple[Candidates, np.ndarray]:
    """Six unverified candidates per (owner photo, top is its original, base score, margin)
    query: the top scores base + margin, the others base + 0.03 down to base - 0.01, so the
    5th best is the base itself."""
    ids, scores = [], []
    for q, (owner, found, base, margin) in enumerate(queries):
        ids.append([owner if found else 1000 + q, *(2000 + 10 * q + j for j in range(5))])
        scores.append([base + margin, *(base + 0.01 * d for d in (3, 2, 1, 0, -1))])
    found_ids = np.array(ids)
    owners = np.array([owner for owner, *_ in queries])
    rank = np.where(found_ids[:, 0] == owners, 1, 7)
    return Candidates(found_ids, np.array(scores, dtype=np.float32),
                      np.zeros(found_ids.shape, np.int64), rank), owners


# Each of 20 photos: a copy found first, clear of its 5th best by 0.15 or more at a low
# score, and a query whose top result is wrong, scored higher but 0.09 clear at most.
QUERIES = [query for photo in range(20) for query in (
    (photo, True, 0.3, 0.15 + 0.01 * (photo // 2)), (photo, False, 0.6, 0.05 + 0.002 * photo))]


def test_fitting_finds_a_margin_that_reaches_the_target_where_a_score_cannot() -> None:
    found, owners = synthetic(QUERIES)
    fitted = fit_calibration(found, owners, target_precision=0.99)
    assert fitted.margin_rank == 5
    assert fitted.margin_threshold is not None and 0.088 < fitted.margin_threshold <= 0.15
    assert (fitted.precision_verified, fitted.recall_verified) == (1.0, 0.5)
    assert fitted.recall == 0.0  # every copy scores below some wrong top result


def test_held_out_figures_list_the_pairs_called_wrongly() -> None:
    found, owners = synthetic(QUERIES)
    clean = held_out(found, owners, target_precision=0.99)
    assert (clean.precision, clean.recall, clean.false_positives) == (1.0, 0.5, [])
    # odd photos' copies stand 0.25 clear, and photo 1's wrong top result 0.2: fitted on
    # the odd photos, the margin misses the even ones' copies; fitted on the even ones
    # (0.15), it calls that wrong result
    queries = [(photo, True, base, 0.15 + 0.1 * (photo % 2)) if original else
               (photo, False, base, 0.2 if q == 3 else margin)
               for q, (photo, original, base, margin) in enumerate(QUERIES)]
    found, owners = synthetic(queries)
    checked = held_out(found, owners, target_precision=0.99)
    assert (checked.precision, checked.recall) == (round(10 / 11, 4), 0.25)
    [wrong] = checked.false_positives
    assert (wrong.query, wrong.result, wrong.inliers) == (3, 1003, 0)
    assert wrong.margin == pytest.approx(0.2, abs=1e-4)


def test_a_false_positive_is_named_by_photo_edit_and_result() -> None:
    data = copy_queries(distractors=5, photos=2)
    first, second = data.names
    # query 20: the second photo's third edit; gallery rows: the 2 photos, then distractors
    photo = describe(FalsePositive(query=20, result=0, score=0.9, inliers=3, margin=0.2), data)
    assert photo == {"query": f"{second} ({EDIT_TYPES[2]})", "result": first, "score": 0.9,
                     "inliers": 3, "margin": 0.2}
    other = describe(FalsePositive(query=0, result=4, score=0.5, inliers=0, margin=0.1), data)
    assert (other["query"], other["result"]) == (f"{first} ({EDIT_TYPES[0]})", "distractor 2")
