"""COCO scores through pycocotools on hand-made boxes: labelled mAP, class-agnostic mAP (every
category merged: finding objects apart from naming them) and AP@.5 per class."""

from __future__ import annotations

import math

import numpy as np

from lookalike.retrieval.evaluation.coco import Found, Truth, coco_scores

SIZE = (100, 100)
# two images: a 20x20 box of class 1 and a 30x30 box of class 2 in the first, one box of
# class 1 in the second; class 3 has no true box anywhere
TRUTHS = [Truth(np.array([[10, 10, 30, 30], [50, 50, 80, 80]], dtype=np.float32),
                np.array([1, 2])),
          Truth(np.array([[5, 60, 45, 95]], dtype=np.float32), np.array([1]))]


def found(labels: list[list[int]]) -> list[Found]:
    """Every true box found exactly, score 0.9, with the given labels per image."""
    return [Found(truth.boxes.copy(), np.full(len(truth.boxes), 0.9, dtype=np.float32),
                  np.array(image_labels))
            for truth, image_labels in zip(TRUTHS, labels, strict=True)]


def test_right_boxes_right_labels_score_one_everywhere() -> None:
    scores = coco_scores(TRUTHS, found([[1, 2], [1]]), classes=3, size=SIZE)
    assert math.isclose(scores.map_50, 1.0) and math.isclose(scores.map, 1.0)
    assert [round(ap, 4) for ap in scores.class_ap_50[:2]] == [1.0, 1.0]
    assert math.isnan(scores.class_ap_50[2])  # no true box of class 3: no AP, not 0


def test_right_boxes_wrong_labels_score_zero_labelled_and_one_agnostic() -> None:
    swapped = found([[2, 1], [2]])
    labelled = coco_scores(TRUTHS, swapped, classes=3, size=SIZE)
    merged = coco_scores(TRUTHS, swapped, classes=3, size=SIZE, agnostic=True)
    assert labelled.map_50 == 0.0
    assert labelled.class_ap_50[:2] == (0.0, 0.0)
    assert math.isclose(merged.map_50, 1.0)
    assert len(merged.class_ap_50) == 1  # one merged category


def test_agnostic_counts_a_missed_object_and_a_misplaced_box() -> None:
    # the class-2 object is missed and the second image's box is shifted to IoU < 0.5:
    # merging labels cannot turn those into hits
    detections = [Found(np.array([[10, 10, 30, 30]], dtype=np.float32),
                        np.array([0.9], dtype=np.float32), np.array([2])),
                  Found(np.array([[40, 60, 80, 95]], dtype=np.float32),
                        np.array([0.8], dtype=np.float32), np.array([1]))]
    merged = coco_scores(TRUTHS, detections, classes=3, size=SIZE, agnostic=True)
    labelled = coco_scores(TRUTHS, detections, classes=3, size=SIZE)
    # one of three objects found, at the top score: precision 1 up to recall 1/3
    assert 0.3 < merged.map_50 < 0.4
    assert labelled.map_50 == 0.0
