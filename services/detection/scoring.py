"""Held-out figures of a detector (COCO mAP through pycocotools: labelled, class-agnostic
and AP@.5 per class) or of a localization head (share of boxes with IoU >= 0.5, class
accuracy), on a COCO file and its images."""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
from PIL import Image
from torch import nn

from lookalike.retrieval.detection.coco import read_coco
from lookalike.retrieval.detection.finding import find_boxes
from lookalike.retrieval.detection.networks import DetectorConfig, Localizer
from lookalike.retrieval.detection.scenes import box_iou
from lookalike.retrieval.detection.training import Sample, detect, load_samples, localize
from lookalike.retrieval.evaluation.coco import Found, Truth, coco_scores
from lookalike.services.detection.store import LOCALIZER


def score_detector(model: nn.Module, config: DetectorConfig, coco: Path,
                   images: Path) -> dict[str, float]:
    """The held-out figures of `model` on the COCO file `coco` (images under `images`)."""
    samples = load_samples(read_coco(coco), images, size=config.size)
    if config.architecture == LOCALIZER:
        assert isinstance(model, Localizer)
        return _localizer_figures(model, [s for s in samples if len(s.labels)])
    started = time.perf_counter()
    found = detect(model, [s.pixels for s in samples])
    seconds = (time.perf_counter() - started) / max(1, len(samples))
    truths = [Truth(s.boxes, s.labels) for s in samples]
    founds = [Found(*item) for item in found]
    side = (config.size, config.size)
    scores = coco_scores(truths, founds, classes=len(config.classes), size=side)
    merged = coco_scores(truths, founds, classes=len(config.classes), size=side, agnostic=True)
    per_class = {f"ap_50/{name}": round(ap, 4)
                 for name, ap in zip(config.classes, scores.class_ap_50, strict=True)
                 if not math.isnan(ap)}
    return {"images": float(len(samples)), "map": round(scores.map, 4),
            "map_50": round(scores.map_50, 4), "map_75": round(scores.map_75, 4),
            "recall_100": round(scores.recall_100, 4),
            "agnostic_map": round(merged.map, 4), "agnostic_map_50": round(merged.map_50, 4),
            "seconds_per_image": round(seconds, 4),
            "seconds_per_640px_image": round(_seconds_at_640(model, config, samples), 4),
            **per_class}


def _seconds_at_640(model: nn.Module, config: DetectorConfig, samples: list[Sample]) -> float:
    """Seconds per image of the whole detect call (squash to the detector's side, network,
    boxes back in original pixels) on up to 8 held-out images enlarged to 640 x 640."""
    images = [Image.fromarray(s.pixels).resize((640, 640), Image.Resampling.BILINEAR)
              for s in samples[:8]]
    if not images:
        return 0.0
    started = time.perf_counter()
    find_boxes(model, config, images)
    return (time.perf_counter() - started) / len(images)


def _localizer_figures(model: Localizer, samples: list[Sample]) -> dict[str, float]:
    """Share of first boxes found with IoU >= 0.5, and class accuracy."""
    boxes, labels, _ = localize(model, [s.pixels for s in samples])
    ious = np.array([box_iou(_corners(b), _corners(s.boxes[0]))
                     for b, s in zip(boxes, samples, strict=True)])
    right = [int(label) == int(s.labels[0]) for label, s in zip(labels, samples, strict=True)]
    return {"images": float(len(samples)), "iou_50": round(float(np.mean(ious >= 0.5)), 4),
            "mean_iou": round(float(np.mean(ious)), 4),
            "accuracy": round(float(np.mean(right)), 4)}


def _corners(box: np.ndarray) -> tuple[float, float, float, float]:
    return float(box[0]), float(box[1]), float(box[2]), float(box[3])
