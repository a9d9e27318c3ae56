"""The pretrained `faces` detector (MTCNN): each face of the bundled portraits and of OpenCV's
messi5.jpg found, and no face on the bundled photos without people."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from lookalike.retrieval.detection.faces import face_finder
from lookalike.services.sample import bundled_photos
from tests.videoclips import opencv_sample

pytestmark = pytest.mark.slow

# (x, y) of a point between the eyes, read off each photo.
FACE_CENTRES = {"astronaut": (222, 110), "camera": (225, 150), "grace_hopper": (262, 220)}


def test_each_portrait_face_is_found_and_no_other_photo_has_one() -> None:
    find = face_finder()
    photos = bundled_photos()
    found = dict(zip([p.name for p in photos], find([p.image for p in photos]), strict=True))
    assert {name for name, boxes in found.items() if boxes} == set(FACE_CENTRES)
    for name, (x, y) in FACE_CENTRES.items():
        (face,) = found[name]
        assert face.x0 < x < face.x1 and face.y0 < y < face.y1, (name, face)
        assert face.label == "face" and face.score is not None and face.score >= 0.95


def test_the_player_s_face_in_opencv_s_messi5_is_found() -> None:
    """A small face in a sports photo, the crowd behind it blurred."""
    photo = Image.open(io.BytesIO(opencv_sample("messi5.jpg"))).convert("RGB")
    found = face_finder()([photo])[0]
    assert [(f.x0 < 242 < f.x1 and f.y0 < 106 < f.y1) for f in found] == [True]
    assert found[0].label == "face" and found[0].score is not None and found[0].score >= 0.95


@pytest.mark.parametrize("size", [(1, 1), (19, 19), (3, 500), (500, 19), (20, 20)])
def test_an_image_too_small_for_a_face_has_none(size: tuple[int, int]) -> None:
    assert face_finder()([Image.new("RGB", size, (200, 160, 140))]) == [[]]
