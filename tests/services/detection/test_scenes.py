"""`lookalike sample scenes`: files and COCO JSON, the same for the same seed, held-out split."""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image

from lookalike.retrieval.detection.coco import read_coco
from lookalike.retrieval.detection.scenes import SceneSpec
from lookalike.services.detection.scenes import (
    scene_backgrounds,
    training_scenes,
    write_scenes,
)

SPEC = SceneSpec(size=96, min_object=12, max_object=48)


def _digests(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.rglob("*")) if p.is_file()}


def test_same_seed_writes_identical_files(tmp_path: Path) -> None:
    first = write_scenes(tmp_path / "a", images=4, seed=5, spec=SPEC)
    write_scenes(tmp_path / "b", images=4, seed=5, spec=SPEC)
    assert first.images == 4 and first.objects >= 4
    assert _digests(tmp_path / "a") == _digests(tmp_path / "b")
    coco = read_coco(tmp_path / "a" / "annotations.json")
    assert len(coco.images) == 4 and sum(len(i.boxes) for i in coco.images) == first.objects
    with Image.open(tmp_path / "a" / coco.images[0].file_name) as image:
        assert image.size == (96, 96) and image.mode == "RGB"


def test_held_out_backgrounds_are_photos_training_never_sees() -> None:
    train = {hashlib.sha256(p.tobytes()).hexdigest() for p in scene_backgrounds("train")}
    held = {hashlib.sha256(p.tobytes()).hexdigest() for p in scene_backgrounds("held-out")}
    assert len(train) >= 10 and len(held) >= 4 and not train & held


def test_held_out_scenes_differ_from_training_scenes_with_the_same_seed(tmp_path: Path) -> None:
    write_scenes(tmp_path / "t", images=2, seed=1, spec=SPEC)
    write_scenes(tmp_path / "h", images=2, seed=1, spec=SPEC, split="held-out")
    first = np.asarray(Image.open(tmp_path / "t" / "images" / "scene-00000.png"))
    held = np.asarray(Image.open(tmp_path / "h" / "images" / "scene-00000.png"))
    assert not np.array_equal(first, held)


def test_opencv_digits_are_ten_more_classes_drawn_as_often_as_the_others(
        tmp_path: Path) -> None:
    summary = write_scenes(tmp_path, images=150, seed=3, spec=SPEC, split="held-out")
    assert summary.digits, "make system-deps unpacks digits.png; the scenes did not find it"
    assert summary.classes[10:] == tuple(f"digit-{d}" for d in range(10))
    counts = Counter(label for image in read_coco(tmp_path / "annotations.json").images
                     for label in image.labels)
    assert set(counts) == set(range(1, 21))  # COCO category ids are 1-based
    digits = sum(counts[c] for c in range(11, 21))
    assert 0.4 < digits / sum(counts.values()) < 0.6  # classes drawn uniformly, not items


def test_fresh_training_scenes_are_drawn_again_alike_and_anew_for_another_epoch(
        tmp_path: Path) -> None:
    epoch_0 = training_scenes(3, seed=(1, 0))
    assert all(np.array_equal(a.image, b.image)
               for a, b in zip(epoch_0, training_scenes(3, seed=(1, 0)), strict=True))
    assert not any(np.array_equal(a.image, b.image)
                   for a, b in zip(epoch_0, training_scenes(3, seed=(1, 1)), strict=True))
    written = write_scenes(tmp_path, images=3, seed=1)  # the same defaults as `sample scenes`
    assert written.objects == sum(len(s.objects) for s in training_scenes(3, seed=1))

