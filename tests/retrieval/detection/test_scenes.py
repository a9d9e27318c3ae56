"""The scene generator: deterministic per seed, boxes that match the pasted masks, COCO out."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from lookalike.retrieval.detection.coco import read_coco, scenes_to_coco
from lookalike.retrieval.detection.scenes import (
    Glyphs,
    Scene,
    SceneObject,
    SceneSpec,
    box_iou,
    generate_scenes,
    mask_box,
    visible_shares,
)
from lookalike.retrieval.errors import CocoFormatError
from lookalike.services.sample import FASHION_MNIST_CLASSES, bundled_photos, fashion_mnist

SPEC = SceneSpec(size=128, min_object=16, max_object=64)


@pytest.fixture(scope="module")
def glyphs() -> Glyphs:
    images, labels = fashion_mnist(split="train", limit=200)
    return Glyphs(images, labels, FASHION_MNIST_CLASSES)


@pytest.fixture(scope="module")
def backgrounds() -> list[np.ndarray]:
    return [np.asarray(p.image) for p in bundled_photos()[:4]]


def test_same_seed_same_scenes_other_seed_other_scenes(
        glyphs: Glyphs, backgrounds: list[np.ndarray]) -> None:
    first = generate_scenes(glyphs, backgrounds, count=5, seed=7, spec=SPEC)
    again = generate_scenes(glyphs, backgrounds, count=5, seed=7, spec=SPEC)
    other = generate_scenes(glyphs, backgrounds, count=5, seed=8, spec=SPEC)
    assert all(np.array_equal(a.image, b.image) for a, b in zip(first, again, strict=True))
    assert [[o.box for o in s.objects] for s in first] == \
        [[o.box for o in s.objects] for s in again]
    assert not all(np.array_equal(a.image, b.image) for a, b in zip(first, other, strict=True))


def test_a_seed_of_several_ints_draws_its_own_scenes_the_same_each_time(
        glyphs: Glyphs, backgrounds: list[np.ndarray]) -> None:
    epoch_0 = generate_scenes(glyphs, backgrounds, count=3, seed=(7, 0), spec=SPEC)
    again = generate_scenes(glyphs, backgrounds, count=3, seed=(7, 0), spec=SPEC)
    epoch_1 = generate_scenes(glyphs, backgrounds, count=3, seed=(7, 1), spec=SPEC)
    assert all(np.array_equal(a.image, b.image) for a, b in zip(epoch_0, again, strict=True))
    assert not any(np.array_equal(a.image, b.image)
                   for a, b in zip(epoch_0, epoch_1, strict=True))


def test_boxes_are_the_tight_bounds_of_the_pasted_masks(
        glyphs: Glyphs, backgrounds: list[np.ndarray]) -> None:
    scenes = generate_scenes(glyphs, backgrounds, count=20, seed=3, spec=SPEC)
    objects = [o for s in scenes for o in s.objects]
    assert len(objects) >= 20
    for item in objects:
        assert mask_box(item.mask) == item.box
        x0, y0, x1, y1 = item.box
        assert 0 <= x0 < x1 <= SPEC.size and 0 <= y0 < y1 <= SPEC.size
        assert max(x1 - x0, y1 - y0) <= SPEC.max_object * 1.5  # rotation widens at most ~1.41
        assert 0 <= item.label < len(FASHION_MNIST_CLASSES)


def test_objects_change_the_photo_and_overlap_only_partly(
        glyphs: Glyphs, backgrounds: list[np.ndarray]) -> None:
    scenes = generate_scenes(glyphs, backgrounds, count=20, seed=4, spec=SPEC)
    counts = [len(s.objects) for s in scenes]
    assert min(counts) >= 1 and max(counts) <= SPEC.max_objects and len(set(counts)) > 2
    for scene in scenes:
        boxes = [o.box for o in scene.objects]
        assert all(box_iou(a, b) <= 0.3 for i, a in enumerate(boxes) for b in boxes[i + 1:])
        last = scene.objects[-1]  # pasted last, so none covers it: its pixels are its colour
        pixels = scene.image[last.mask].astype(int)
        assert pixels.std(axis=0).max() < 60  # one colour, shaded


def _least_visible(scenes: list[Scene]) -> float:
    return min(share for scene in scenes for share in visible_shares(scene))


def test_visible_shares_count_the_pixels_later_objects_leave() -> None:
    def square(x0: int, y0: int, side: int) -> np.ndarray:
        mask = np.zeros((32, 32), dtype=bool)
        mask[y0:y0 + side, x0:x0 + side] = True
        return mask

    first = SceneObject(0, (0, 0, 10, 10), square(0, 0, 10))
    over_it = SceneObject(1, (7, 0, 17, 10), square(7, 0, 10))  # hides 3 of its 10 columns
    apart = SceneObject(2, (20, 20, 30, 30), square(20, 20, 10))
    scene = Scene(np.zeros((32, 32, 3), dtype=np.uint8), (first, over_it, apart))
    assert visible_shares(scene) == [0.7, 1.0, 1.0]


def test_min_visible_keeps_every_object_in_view_where_boxes_alone_do_not(
        glyphs: Glyphs, backgrounds: list[np.ndarray]) -> None:
    loose = generate_scenes(glyphs, backgrounds, count=60, seed=5, spec=SPEC)
    kept = generate_scenes(glyphs, backgrounds, count=60, seed=5,
                           spec=replace(SPEC, min_visible=0.5))
    assert _least_visible(loose) < 0.2  # a small object under a large one's mask
    assert _least_visible(kept) >= 0.5
    assert sum(len(s.objects) for s in kept) > 0.8 * sum(len(s.objects) for s in loose)
    with pytest.raises(ValueError, match="min_visible"):
        generate_scenes(glyphs, backgrounds, count=1, seed=5, spec=replace(SPEC, min_visible=2))


def test_coco_document_round_trips_through_the_reader(
        glyphs: Glyphs, backgrounds: list[np.ndarray], tmp_path: Path) -> None:
    scenes = generate_scenes(glyphs, backgrounds, count=3, seed=1, spec=SPEC)
    names = [f"s{i}.png" for i in range(3)]
    path = tmp_path / "a.json"
    path.write_text(json.dumps(scenes_to_coco(scenes, names, FASHION_MNIST_CLASSES)))
    coco = read_coco(path)
    assert coco.classes == FASHION_MNIST_CLASSES
    assert [i.file_name for i in coco.images] == names
    for image, scene in zip(coco.images, scenes, strict=True):
        assert image.boxes == tuple(tuple(float(v) for v in o.box) for o in scene.objects)
        assert image.labels == tuple(o.label + 1 for o in scene.objects)


def test_a_file_that_is_not_coco_names_what_is_missing(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"images": []}))
    with pytest.raises(CocoFormatError, match="categories"):
        read_coco(path)


def test_impossible_sizes_are_refused(glyphs: Glyphs, backgrounds: list[np.ndarray]) -> None:
    with pytest.raises(ValueError, match="object sizes"):
        generate_scenes(glyphs, backgrounds, count=1, seed=0,
                        spec=SceneSpec(size=64, min_object=10, max_object=100))
