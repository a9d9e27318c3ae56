"""Running a detector on whole images: each image squashed to the detector's side, its boxes
scaled back to the original pixels."""

from __future__ import annotations

import numpy as np
from PIL import Image
from torch import nn

from lookalike.retrieval.detection.boxes import Box
from lookalike.retrieval.detection.distinct import best_per_box
from lookalike.retrieval.detection.networks import DetectorConfig, Localizer
from lookalike.retrieval.detection.training import detect, localize


def find_boxes(model: nn.Module, config: DetectorConfig, images: list[Image.Image],
               *, threshold: float | None = None) -> list[list[Box]]:
    """Each image's boxes (score >= threshold, default the detector's), best first, in its
    original pixels: images are squashed to the detector's side and boxes scaled back."""
    cut = config.score_threshold if threshold is None else threshold
    pixels = [np.asarray(i.convert("RGB").resize((config.size, config.size),
                                                 Image.Resampling.BILINEAR)) for i in images]
    if isinstance(model, Localizer):
        boxes, labels, scores = localize(model, pixels)
        found = [(boxes[i:i + 1], scores[i:i + 1], labels[i:i + 1]) for i in range(len(images))]
    else:
        found = detect(model, pixels)
    return [_scaled(item, image.size, config, cut) for item, image in zip(found, images,
                                                                         strict=True)]


def _scaled(found: tuple[np.ndarray, np.ndarray, np.ndarray], size: tuple[int, int],
            config: DetectorConfig, threshold: float) -> list[Box]:
    """Boxes above the threshold, in the original image's pixels, clipped to it; a box a
    two-stage detector answers under several labels is kept once, with its best label."""
    boxes, scores, labels = found
    sx, sy = size[0] / config.size, size[1] / config.size
    kept = []
    for index in best_per_box(boxes, scores):
        box, score, label = boxes[index], scores[index], labels[index]
        if score < threshold:
            break
        x0, x1 = (round(float(np.clip(v * sx, 0, size[0])), 1) for v in (box[0], box[2]))
        y0, y1 = (round(float(np.clip(v * sy, 0, size[1])), 1) for v in (box[1], box[3]))
        if x1 > x0 and y1 > y0:
            kept.append(Box(x0, y0, x1, y1, config.classes[int(label) - 1],
                            round(float(score), 4)))
    return kept
