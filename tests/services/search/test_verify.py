"""Verification at search time on the bundled photos: re-ranking by inliers, is_copy."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from lookalike.retrieval.training.copyedits import apply_edit
from lookalike.services.catalog import spaces as space_queries
from lookalike.services.catalog.documents import CopyCalibration
from lookalike.services.errors import InvalidRequest
from lookalike.services.runtime import Runtime
from lookalike.services.sample import bundled_photos
from lookalike.services.search.query import search_vector
from lookalike.services.spaces.create import SpaceDefinition, create_space
from lookalike.services.spaces.lookup import find_space


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
