"""Sample clip sets on disk: written as mp4 per class, read back as arrays; and the direction
accuracy the comparison reports."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lookalike.retrieval.video.synthetic import MOTIONS, ClipSpec, make_clips
from lookalike.services.errors import InvalidRequest
from lookalike.services.sample import bundled_photos, fashion_mnist
from lookalike.services.video.clips import (
    DEFAULT_SPEC,
    clip_frames,
    load_clip_folder,
    write_mp4,
    write_sample_clips,
)
from lookalike.services.video.compare import direction_accuracy


def test_sample_clips_write_and_read_back(tmp_path: Path) -> None:
    written = write_sample_clips(tmp_path, seed=1, per_class=1)
    assert written == 2 * (len(MOTIONS) + 10)  # train and test, both tasks
    motion = load_clip_folder(tmp_path / "motion" / "train", ClipSpec(frames=4, size=16))
    assert motion.clips.shape == (len(MOTIONS), 4, 16, 16, 3)
    assert set(motion.classes) <= set(MOTIONS)
    assert [motion.classes[label] for label in motion.labels] == sorted(
        p.parent.name for p in (tmp_path / "motion" / "train").rglob("*.mp4"))
    again = tmp_path / "again"
    write_sample_clips(again, seed=1, per_class=1)
    first = {p.relative_to(tmp_path): p.read_bytes() for p in tmp_path.glob("motion/*/*/*")}
    second = {p.relative_to(again): p.read_bytes() for p in again.glob("motion/*/*/*")}
    assert first == second  # the same seed, the same clips


def test_written_clips_decode_with_a_small_error_that_does_not_grow_along_the_clip(
        tmp_path: Path) -> None:
    # a coding error that grows frame after frame is a change over time a 3-D convolution
    # learns as readily as the motion it should classify
    items, labels = fashion_mnist(limit=50)
    backgrounds = [np.asarray(photo.image) for photo in bundled_photos()]
    clips, _ = make_clips(items, labels, backgrounds, task="motion", count=4, seed=3)
    for index, clip in enumerate(clips):
        write_mp4(tmp_path / f"{index}.mp4", clip)
        back = clip_frames((tmp_path / f"{index}.mp4").read_bytes(), DEFAULT_SPEC)
        errors = np.abs(back.astype(np.int16) - clip.astype(np.int16)).mean(axis=(1, 2, 3))
        assert errors.max() <= 3.0, errors
        assert errors[-1] <= errors[0] + 0.5, errors


def test_an_empty_folder_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "left").mkdir()
    with pytest.raises(InvalidRequest, match="sample clips"):
        load_clip_folder(tmp_path)


def test_direction_accuracy_counts_only_answers_inside_the_pair() -> None:
    classes = ["down", "left", "right", "up"]
    labels = np.array([1, 1, 2, 2, 0, 3])
    predicted = np.array([1, 2, 2, 0, 0, 0])  # right, wrong, right, outside, right, wrong
    assert direction_accuracy(predicted, labels, classes) == pytest.approx(3 / 5)
    assert direction_accuracy(predicted, labels, ["a", "b", "c", "d"]) is None
