"""The moment within a clip: a still registered onto a fixed scene's frames picks the frame
where the small moving detail sits where the still shows it."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageOps

from lookalike.retrieval.verification import verify_pair
from lookalike.retrieval.video.moments import aligned_correlation, rank_frames
from tests.imagefactory import photo
from tests.videofactory import moving_detail_frames


def screenshot(frame: Image.Image, left: int, top: int) -> Image.Image:
    """What a person would paste: a 90 % crop, half size, JPEG 75."""
    width, height = frame.size
    crop = frame.crop((left, top, left + width * 9 // 10, top + height * 9 // 10))
    small = crop.resize((crop.width // 2, crop.height // 2), Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    small.save(buffer, format="JPEG", quality=75)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


@pytest.fixture(scope="module")
def frames() -> list[Image.Image]:
    return [Image.fromarray(pixels) for pixels in moving_detail_frames(12)]


@pytest.mark.parametrize(("index", "left", "top"), [(1, 0, 0), (5, 20, 9), (8, 31, 18),
                                                    (10, 7, 3)])
def test_the_still_ranks_its_own_frame_first(frames: list[Image.Image], index: int,
                                             left: int, top: int) -> None:
    ranked = rank_frames(screenshot(frames[index], left, top), frames, [0.5] * len(frames))
    assert ranked[0].index == index, ranked[:3]
    assert all(score.correlation is not None for score in ranked)
    correlations = [score.correlation or 0.0 for score in ranked]
    assert correlations == sorted(correlations, reverse=True)


def test_a_frame_the_still_does_not_register_onto_comes_after_the_others(
        frames: list[Image.Image]) -> None:
    other = photo("coffee", frames[0].size)
    ranked = rank_frames(screenshot(frames[3], 10, 10), [other, *frames[2:5]], [0.5] * 4)
    assert ranked[0].index == 2
    unregistered = next(score for score in ranked if score.index == 0)
    assert unregistered.correlation is None
    assert unregistered.score == min(score.score for score in ranked)


def test_the_global_similarity_decides_where_the_pixels_do_not(
        frames: list[Image.Image]) -> None:
    same = [frames[5]] * 3
    ranked = rank_frames(screenshot(frames[5], 4, 4), same, [0.2, 0.9, 0.4])
    assert [score.index for score in ranked] == [1, 2, 0]
    with pytest.raises(ValueError, match="3 frames but 2 similarities"):
        rank_frames(screenshot(frames[5], 4, 4), same, [0.2, 0.9])


def test_a_mirrored_still_is_aligned_through_its_mirror(frames: list[Image.Image]) -> None:
    still = ImageOps.mirror(screenshot(frames[6], 12, 12))
    found = verify_pair(still, frames[6])
    assert found.mirrored and found.homography is not None
    correlation = aligned_correlation(still, frames[6], found)
    assert correlation is not None and correlation > 0.9
    assert rank_frames(still, frames, [0.5] * len(frames))[0].index == 6


def test_the_correlation_of_unrelated_alignment_is_low(frames: list[Image.Image]) -> None:
    still = screenshot(frames[4], 0, 0)
    found = verify_pair(still, frames[4], mirrored=False)
    shifted = Image.fromarray(np.roll(np.asarray(frames[4]), 40, axis=1))
    right = aligned_correlation(still, frames[4], found)
    wrong = aligned_correlation(still, shifted, found)
    assert right is not None and wrong is not None and right > 0.9 and wrong < right - 0.3


def test_a_frame_showing_part_of_the_still_explains_only_that_part(
        frames: list[Image.Image]) -> None:
    still = screenshot(frames[4], 0, 0)
    pixels = np.asarray(frames[4]).copy()
    half = pixels.shape[1] // 2
    pixels[:, :half] = pixels[:, half:].copy()  # the camera panned by half the frame
    pixels[:, half:] = np.asarray(photo("coffee", (pixels.shape[1] - half, pixels.shape[0])))
    panned = Image.fromarray(pixels)
    whole = aligned_correlation(still, frames[4], verify_pair(still, frames[4], mirrored=False))
    part = aligned_correlation(still, panned, verify_pair(still, panned, mirrored=False))
    assert whole is not None and part is not None
    assert whole > 0.9 and part < 0.6
