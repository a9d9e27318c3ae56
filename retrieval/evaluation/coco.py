"""COCO detection scores through pycocotools' maintained evaluator (never a hand-rolled mAP)."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from lookalike.retrieval.detection.distinct import best_per_box


@dataclass(frozen=True)
class Truth:
    """One image's true boxes (M, 4) as x0, y0, x1, y1 and their 1-based labels (M,)."""

    boxes: np.ndarray
    labels: np.ndarray


@dataclass(frozen=True)
class Found:
    """One image's detections: boxes (M, 4) x0, y0, x1, y1, scores (M,), labels (M,)."""

    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray


@dataclass(frozen=True)
class CocoScores:
    """COCO mAP@[.5:.95], mAP@.5, mAP@.75 and recall@100 (AR), each in [0, 1], and AP@.5 of
    each category 1..K in order (nan for a category with no true box)."""

    map: float
    map_50: float
    map_75: float
    recall_100: float
    class_ap_50: tuple[float, ...]


def coco_scores(truths: Sequence[Truth], found: Sequence[Found], *, classes: int,
                size: tuple[int, int], agnostic: bool = False) -> CocoScores:
    """Score detections against the truth with pycocotools' COCOeval (bbox).

    `agnostic` merges every category into one (labels ignored on both sides): it scores
    finding the objects apart from naming them, so the gap to the labelled mAP is what
    class confusion costs. A detector's boxes of two labels on one object then count as
    one hit and one false positive; the same box answered under several labels (a two-stage
    detector's top classes) counts once, at its best score."""
    if agnostic:
        truths = [Truth(t.boxes, np.ones(len(t.labels), dtype=np.int64)) for t in truths]
        found = [_best_per_box(f) for f in found]
        classes = 1
    ground = COCO()
    ground.dataset = _truth_document(truths, classes, size)
    with contextlib.redirect_stdout(io.StringIO()):
        ground.createIndex()
        results = _detections(found)
        if not results:
            return CocoScores(0.0, 0.0, 0.0, 0.0, _no_hits(truths, classes))
        evaluation = COCOeval(ground, ground.loadRes(results), "bbox")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    stats = [max(0.0, float(v)) for v in evaluation.stats]
    return CocoScores(stats[0], stats[1], stats[2], stats[8], _class_ap_50(evaluation))


def _class_ap_50(evaluation: COCOeval) -> tuple[float, ...]:
    """AP at IoU 0.5 (all areas, 100 detections) per category from COCOeval's precision
    table (IoU, recall, category, area, max detections); -1 there marks no true box."""
    table = evaluation.eval["precision"][0, :, :, 0, -1]
    return tuple(float(np.mean(column[column > -1])) if (column > -1).any() else float("nan")
                 for column in table.T)


def _best_per_box(found: Found) -> Found:
    """Each distinct box once, at its best score, labelled 1."""
    kept = best_per_box(np.asarray(found.boxes), np.asarray(found.scores))
    return Found(np.asarray(found.boxes)[kept], np.asarray(found.scores)[kept],
                 np.ones(len(kept), dtype=np.int64))


def _no_hits(truths: Sequence[Truth], classes: int) -> tuple[float, ...]:
    """Per-category AP when nothing was detected: 0 where there are true boxes, else nan."""
    present = {int(label) for truth in truths for label in truth.labels}
    return tuple(0.0 if c in present else float("nan") for c in range(1, classes + 1))


def _xywh(box: np.ndarray) -> list[float]:
    return [float(box[0]), float(box[1]), float(box[2] - box[0]), float(box[3] - box[1])]


def _truth_document(truths: Sequence[Truth], classes: int,
                    size: tuple[int, int]) -> dict[str, list[dict[str, object]]]:
    """The COCO ground-truth document of `truths` (image ids 1..N)."""
    annotations: list[dict[str, object]] = []
    for image_id, truth in enumerate(truths, start=1):
        for box, label in zip(truth.boxes, truth.labels, strict=True):
            xywh = _xywh(box)
            annotations.append({"id": len(annotations) + 1, "image_id": image_id,
                                "category_id": int(label), "bbox": xywh,
                                "area": xywh[2] * xywh[3], "iscrowd": 0})
    return {"images": [{"id": i, "width": size[0], "height": size[1]}
                       for i in range(1, len(truths) + 1)],
            "annotations": annotations,
            "categories": [{"id": c} for c in range(1, classes + 1)]}


def _detections(found: Sequence[Found]) -> list[dict[str, object]]:
    return [{"image_id": image_id, "category_id": int(label), "bbox": _xywh(box),
             "score": float(score)}
            for image_id, item in enumerate(found, start=1)
            for box, score, label in zip(item.boxes, item.scores, item.labels, strict=True)]
