"""COCO detection JSON: writing generated scenes, reading any annotation file back.

Category ids are 1-based (0 is the background class of torchvision's detectors); boxes are
stored as COCO's [x, y, width, height] and handled here as (x0, y0, x1, y1).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lookalike.retrieval.detection.scenes import Scene
from lookalike.retrieval.errors import CocoFormatError


@dataclass(frozen=True)
class CocoImage:
    """One annotated image: its file, size, and boxes (x0, y0, x1, y1) with 1-based labels."""

    image_id: int
    file_name: str
    width: int
    height: int
    boxes: tuple[tuple[float, float, float, float], ...]
    labels: tuple[int, ...]


@dataclass(frozen=True)
class CocoSet:
    """A detection data set: its category names (index i is category id i + 1) and images."""

    classes: tuple[str, ...]
    images: tuple[CocoImage, ...]


def scenes_to_coco(scenes: Sequence[Scene], file_names: Sequence[str],
                   classes: Sequence[str]) -> dict[str, Any]:
    """The COCO detection document of `scenes`, saved as `file_names`, in order."""
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    for image_id, (scene, name) in enumerate(zip(scenes, file_names, strict=True), start=1):
        height, width = scene.image.shape[:2]
        images.append({"id": image_id, "file_name": name, "width": width, "height": height})
        for item in scene.objects:
            x0, y0, x1, y1 = item.box
            annotations.append({
                "id": len(annotations) + 1, "image_id": image_id,
                "category_id": item.label + 1, "bbox": [x0, y0, x1 - x0, y1 - y0],
                "area": int(item.mask.sum()), "iscrowd": 0,
            })
    categories = [{"id": i + 1, "name": name} for i, name in enumerate(classes)]
    return {"images": images, "annotations": annotations, "categories": categories}


def read_coco(path: Path) -> CocoSet:
    """Read a COCO detection file; categories are renumbered 1..K in their id order."""
    try:
        document = json.loads(path.read_text())
        categories = sorted(document["categories"], key=lambda c: int(c["id"]))
        remap = {int(c["id"]): i + 1 for i, c in enumerate(categories)}
        boxes: dict[int, list[tuple[tuple[float, float, float, float], int]]] = {}
        for note in document.get("annotations", []):
            x, y, w, h = (float(v) for v in note["bbox"])
            entry = ((x, y, x + w, y + h), remap[int(note["category_id"])])
            boxes.setdefault(int(note["image_id"]), []).append(entry)
        images = tuple(_image(record, boxes.get(int(record["id"]), []))
                       for record in document["images"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise CocoFormatError(
            f"{path} is not a COCO detection file ({error!r}); it needs images, annotations "
            "with bbox and category_id, and categories") from error
    return CocoSet(tuple(str(c["name"]) for c in categories), images)


def _image(record: dict[str, Any],
           found: list[tuple[tuple[float, float, float, float], int]]) -> CocoImage:
    """One image record with its annotations."""
    return CocoImage(int(record["id"]), str(record["file_name"]), int(record["width"]),
                     int(record["height"]), tuple(box for box, _ in found),
                     tuple(label for _, label in found))
