"""The copies benchmark on the bundled photos: per-edit figures, verification, calibration."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from lookalike.retrieval.training.copyedits import apply_edit
from lookalike.services.evaluation.calibration import evaluate_copies, fit_calibration, held_out
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
    photo = next(p for p in bundled_photos() if p.name == "coffee")
    query = jpeg_bytes(apply_edit(photo.image, "perspective", 99, strength=0.8))
    results = search_vector(photo_home, space_name=None, k=3, query=query, verify=True).results
    assert results[0].source.endswith("coffee.jpg") and results[0].is_copy
    assert [hit.is_copy for hit in results[1:]] == [False, False]


def test_held_out_calibration_shows_a_threshold_that_does_not_carry_over() -> None:
    # One candidate per query, its original or not; scores that a threshold fitted on the
    # even photos (0.8) would call the odd photos' wrong candidate (0.85) a copy.
    owners = np.array([0, 1, 2, 3])
    found = Candidates(ids=np.array([[0], [9], [2], [3]]),
                       scores=np.array([[0.9], [0.85], [0.8], [0.7]], dtype=np.float32),
                       inliers=np.full((4, 1), -1), original_rank=np.array([1, 2, 1, 1]))
    fitted = fit_calibration(found, owners, target_precision=0.99)
    assert (fitted.score_threshold, fitted.precision_verified) == (0.9, 1.0)
    assert held_out(found, owners, target_precision=0.99) == (0.0, 0.0)
