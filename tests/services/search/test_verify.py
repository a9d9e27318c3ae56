"""Verification at search time on the bundled photos: re-ranking by inliers, is_copy."""

from __future__ import annotations

import io

import pytest
from PIL import Image
from pydantic import ValidationError
from sqlalchemy import JSON, type_coerce, update
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session

from lookalike.retrieval.training.copyedits import apply_edit
from lookalike.services.catalog import spaces as space_queries
from lookalike.services.catalog.documents import CopyCalibration
from lookalike.services.catalog.models import Space
from lookalike.services.errors import InvalidRequest
from lookalike.services.runtime import Runtime
from lookalike.services.sample import bundled_photos
from lookalike.services.search.query import Hit, search_vector
from lookalike.services.search.verify import decide, margin_reference
from lookalike.services.spaces.create import SpaceDefinition, create_space
from lookalike.services.spaces.lookup import find_space
from tests.services.catalog.builders import space as new_space

# What a calibration stored before margins existed holds (no margin fields).
OLD_CALIBRATION = {"score_threshold": 0.7, "inlier_threshold": 15, "target_precision": 0.99,
                   "benchmark": "copies", "pairs": 100, "precision": 0.99, "recall": 0.8,
                   "precision_verified": 0.99, "recall_verified": 0.9,
                   "held_out_precision": 0.8, "held_out_recall": 0.9}
MARGIN = CopyCalibration.model_validate({**OLD_CALIBRATION, "margin_threshold": 0.1,
                                         "margin_rank": 3})


def jpeg_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def edited(name: str, edit: str) -> bytes:
    """A bundled photo, edited hard, as upload bytes."""
    photo = next(p for p in bundled_photos() if p.name == name)
    return jpeg_bytes(apply_edit(photo.image, edit, 7, strength=1.0))


def test_verify_puts_the_original_first_with_its_inliers(photo_home: Runtime) -> None:
    query = edited("chelsea", "paste_onto_image")
    plain = search_vector(photo_home, space_name=None, k=5, query=query)
    checked = search_vector(photo_home, space_name=None, k=5, query=query, verify=True)
    assert not plain.verified and all(hit.inliers is None for hit in plain.results)
    assert checked.verified
    top, *rest = checked.results
    assert top.source.endswith("chelsea.jpg") and top.inliers is not None and top.inliers >= 30
    assert all(hit.inliers is not None and hit.inliers < 10 for hit in rest)
    assert all(hit.is_copy is None for hit in checked.results)


def test_the_spaces_default_and_calibration_apply(photo_home: Runtime) -> None:
    with photo_home.session() as session:
        space = find_space(session=session, name=None)
        options = space.options.model_copy(update={
            "verify": True, "verify_n": 10,
            "copy_calibration": CopyCalibration(
                score_threshold=0.99, inlier_threshold=15, target_precision=0.99,
                benchmark="test", pairs=1, precision=1.0, recall=1.0, precision_verified=1.0,
                recall_verified=1.0)})
        space_queries.set_space_options(session=session, space_id=space.id, options=options)
        session.commit()
    answer = search_vector(photo_home, space_name=None, k=3,
                           query=edited("coffee", "heavy_crop")).to_public()
    assert answer["verified"]
    first, *others = answer["results"]
    assert first["source"].endswith("coffee.jpg") and first["is_copy"] is True
    assert [hit["is_copy"] for hit in others] == [False, False]


def test_a_space_can_be_created_verifying_by_default(photo_home: Runtime) -> None:
    space = create_space(photo_home, name="checked",
                         definition=SpaceDefinition(verify=True, verify_n=7))
    assert (space.options.verify, space.options.verify_n) == (True, 7)
    with pytest.raises(InvalidRequest, match="verify_n"):
        create_space(photo_home, name="bad", definition=SpaceDefinition(verify_n=0))


def hit(image_id: int, score: float, inliers: int | None = None) -> Hit:
    return Hit(image_id=image_id, score=score, source=f"file:///{image_id}.jpg", label=None,
               collection=None, inliers=inliers)


def test_a_margin_calls_the_top_result_clear_of_the_ranked_score_or_enough_inliers() -> None:
    hits = [hit(1, 0.80), hit(2, 0.75), hit(3, 0.69), hit(4, 0.60, inliers=20), hit(5, 0.5)]
    reference = margin_reference(MARGIN, hits)
    assert reference == 0.69  # the 3rd best score
    # 0.80 clears 0.69 by 0.11; 0.75 is over the score threshold but not the top result
    assert [h.is_copy for h in decide(MARGIN, hits, reference=reference)] == [
        True, False, False, True, False]
    assert [h.is_copy for h in decide(MARGIN, hits, reference=0.71)] == [
        False, False, False, True, False]
    # too few results to measure the margin from: only inliers call
    assert margin_reference(MARGIN, hits[:2]) is None
    assert [h.is_copy for h in decide(MARGIN, hits[:2])] == [False, False]


def test_a_catalogued_query_is_neither_the_top_result_nor_in_the_reference() -> None:
    hits = [hit(9, 1.0), hit(1, 0.80), hit(2, 0.75), hit(3, 0.69)]
    reference = margin_reference(MARGIN, hits, query_id=9)
    assert reference == 0.69
    assert [h.is_copy for h in decide(MARGIN, hits, reference=reference, query_id=9)] == [
        False, True, False, False]


def test_margin_fields_come_together() -> None:
    with pytest.raises(ValidationError, match="give both or neither"):
        CopyCalibration.model_validate({**OLD_CALIBRATION, "margin_threshold": 0.1})


def test_a_calibration_stored_before_margins_loads_and_decides_as_before(
        session: Session) -> None:
    stored = new_space(session)
    session.commit()
    document = {**stored.options.model_dump(mode="json"), "copy_calibration": OLD_CALIBRATION}
    column = JSONB() if session.get_bind().dialect.name == "postgresql" else JSON()
    session.execute(update(Space).where(Space.id == stored.id)
                    .values(options=type_coerce(document, column)))
    session.commit()
    session.expire_all()
    calibration = session.get(Space, stored.id).options.copy_calibration
    assert calibration is not None
    assert (calibration.margin_threshold, calibration.margin_rank) == (None, None)
    hits = [hit(1, 0.80), hit(2, 0.75), hit(3, 0.69, inliers=15), hit(4, 0.5, inliers=9)]
    # any score over 0.7, or inliers over 15, as before margins existed
    assert [h.is_copy for h in decide(calibration, hits, reference=margin_reference(
        calibration, hits))] == [True, True, True, False]


def test_a_margin_calibration_decides_unverified_searches_by_upload_and_by_id(
        photo_home: Runtime) -> None:
    margin = MARGIN.model_copy(update={"margin_threshold": 0.2, "margin_rank": 5})
    with photo_home.session() as session:
        space = find_space(session=session, name=None)
        options = space.options.model_copy(update={"copy_calibration": margin})
        space_queries.set_space_options(session=session, space_id=space.id, options=options)
        session.commit()
    # k=3 is fewer than the margin's rank: the search still looks that far
    top, *rest = search_vector(photo_home, space_name=None, k=3,
                               query=edited("coffee", "colour_jitter")).results
    assert top.source.endswith("coffee.jpg") and top.inliers is None and top.is_copy
    assert [h.is_copy for h in rest] == [False, False]
    by_id = search_vector(photo_home, space_name=None, k=3, image_id=top.image_id).results
    assert by_id[0].image_id == top.image_id
    assert [h.is_copy for h in by_id] == [False, False, False]
