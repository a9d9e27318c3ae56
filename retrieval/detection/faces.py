"""The pretrained `faces` detector: facenet-pytorch's MTCNN, whose weights ship inside its
wheel (installed with --no-deps, since its metadata pins an old torch). No training."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PIL import Image

from lookalike.retrieval.detection.boxes import Box
from lookalike.retrieval.errors import EngineUnavailable

FACES = "faces"
FACE_THRESHOLD = 0.95  # MTCNN's face probability; below it, the bundled photos give false faces

Finder = Callable[[list[Image.Image]], list[list[Box]]]


def face_finder(threshold: float = FACE_THRESHOLD) -> Finder:
    """A function giving each image's faces (probability >= threshold), best first."""
    try:
        from facenet_pytorch import MTCNN
    except ImportError as error:
        raise EngineUnavailable("the 'faces' detector needs facenet-pytorch: `pip install "
                                "--no-deps facenet-pytorch==2.6.0`") from error
    mtcnn = MTCNN(keep_all=True, device="cpu")

    def find(images: list[Image.Image]) -> list[list[Box]]:
        return [_faces(mtcnn, image.convert("RGB"), threshold) for image in images]

    return find


def _faces(mtcnn: object, image: Image.Image, threshold: float) -> list[Box]:
    """One image's faces as boxes clipped to it; none on an image narrower than MTCNN's
    smallest face (its image pyramid would have no level, and facenet-pytorch raises)."""
    if min(image.size) < mtcnn.min_face_size:  # type: ignore[attr-defined]
        return []
    boxes, probabilities = mtcnn.detect(image)  # type: ignore[attr-defined]
    if boxes is None:
        return []
    width, height = image.size
    found = []
    for box, probability in zip(np.asarray(boxes), np.asarray(probabilities), strict=True):
        x0, x1 = (round(float(np.clip(v, 0, width)), 1) for v in (box[0], box[2]))
        y0, y1 = (round(float(np.clip(v, 0, height)), 1) for v in (box[1], box[3]))
        if probability >= threshold and x1 > x0 and y1 > y0:
            found.append(Box(x0, y0, x1, y1, "face", round(float(probability), 4)))
    return sorted(found, key=lambda b: -(b.score or 0.0))
