"""`lookalike sample scenes`: detection scenes from Fashion-MNIST (and OpenCV's digits.png when
an installed package ships it) pasted on the bundled photos, written as PNG files + COCO JSON."""

from __future__ import annotations

import io
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from lookalike.retrieval import atomic
from lookalike.retrieval.detection.coco import scenes_to_coco
from lookalike.retrieval.detection.scenes import (
    DEFAULT_SPEC,
    Glyphs,
    Scene,
    SceneSpec,
    generate_scenes,
    visible_shares,
)
from lookalike.services.sample import (
    FASHION_MNIST_CLASSES,
    OPENCV_DATA,
    bundled_photos,
    fashion_mnist,
)

logger = logging.getLogger(__name__)

SPLITS = ("train", "held-out")
ANNOTATIONS = "annotations.json"
# opencv-doc's sample data, unpacked by `make system-deps` or installed whole; no PyPI wheel
# ships digits.png, so these are the places looked.
DIGITS_PATHS = (OPENCV_DATA / "digits.png",
                Path("/usr/share/doc/opencv-doc/examples/data/digits.png"))
_DIGIT_CELL = 20
_HELD_OUT_EVERY = 4  # every 4th bundled photo (by name) is a held-out background
PNG_LEVEL = 1


@dataclass(frozen=True)
class ScenesSummary:
    """What `write_scenes` wrote: the folder, scene and object counts, and the classes."""

    directory: Path
    images: int
    objects: int
    classes: tuple[str, ...]
    digits: bool
    half_hidden: int  # objects with under half their pixels in view


def scene_glyphs(split: str, *, digits_paths: tuple[Path, ...] = DIGITS_PATHS) -> Glyphs:
    """Fashion-MNIST items (train or test split) plus OpenCV digits when the file is there."""
    _check_split(split)
    images, labels = fashion_mnist(split="train" if split == "train" else "test")
    classes = FASHION_MNIST_CLASSES
    digits = _opencv_digits(digits_paths)
    if digits is not None:
        cells, digit_labels = digits
        held = np.arange(len(cells)) % 5 == 4  # one digit in five is held out
        keep = ~held if split == "train" else held
        cells = np.stack([np.asarray(Image.fromarray(c).resize((28, 28))) for c in cells[keep]])
        images = np.concatenate([images, cells])
        labels = np.concatenate([labels, digit_labels[keep] + len(classes)])
        classes = classes + tuple(f"digit-{d}" for d in range(10))
    return Glyphs(images, labels, classes)


def scene_backgrounds(split: str) -> list[np.ndarray]:
    """Bundled photos for a split: every 4th by name is held out, the rest are for training."""
    _check_split(split)
    photos = bundled_photos()
    chosen = [p for i, p in enumerate(photos) if (i % _HELD_OUT_EVERY == 3) == (split != "train")]
    return [np.asarray(photo.image) for photo in chosen]


def training_scenes(count: int, *, seed: int | tuple[int, ...]) -> list[Scene]:
    """`count` scenes drawn in memory as `sample scenes` draws the training split's."""
    return generate_scenes(scene_glyphs("train"), scene_backgrounds("train"), count=count,
                           seed=seed)


def write_scenes(directory: Path, *, images: int, seed: int, split: str = "train",
                 spec: SceneSpec = DEFAULT_SPEC) -> ScenesSummary:
    """Write DIR/images/scene-NNNNN.png and DIR/annotations.json (COCO), atomically each."""
    glyphs = scene_glyphs(split)
    scenes = generate_scenes(glyphs, scene_backgrounds(split), count=images, seed=seed, spec=spec)
    names = [f"images/scene-{i:05d}.png" for i in range(len(scenes))]
    for scene, name in zip(scenes, names, strict=True):
        _write(directory / name, _png(scene.image))
    document = scenes_to_coco(scenes, names, glyphs.classes)
    _write(directory / ANNOTATIONS, json.dumps(document, indent=1).encode())
    half_hidden = sum(share < 0.5 for scene in scenes for share in visible_shares(scene))
    summary = ScenesSummary(directory, len(scenes), len(document["annotations"]),
                            glyphs.classes, len(glyphs.classes) > len(FASHION_MNIST_CLASSES),
                            half_hidden)
    logger.info("scenes in %s: %s", directory, summary)
    return summary


def _opencv_digits(paths: tuple[Path, ...]) -> tuple[np.ndarray, np.ndarray] | None:
    """OpenCV's 5,000 20x20 digits (500 per class, 5 rows of 100 each) or None if absent."""
    path = next((p for p in paths if p.is_file()), None)
    if path is None:
        logger.info("OpenCV digits.png not installed (looked in %s): Fashion-MNIST only", paths)
        return None
    with Image.open(path) as sheet:
        pixels = np.asarray(sheet.convert("L"))
    rows, cols = pixels.shape[0] // _DIGIT_CELL, pixels.shape[1] // _DIGIT_CELL
    cells = pixels[:rows * _DIGIT_CELL, :cols * _DIGIT_CELL].reshape(
        rows, _DIGIT_CELL, cols, _DIGIT_CELL).swapaxes(1, 2).reshape(-1, _DIGIT_CELL, _DIGIT_CELL)
    labels = np.repeat(np.arange(rows) // (rows // 10), cols).astype(np.int64)
    return cells, labels


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"unknown scene split {split!r}; available: {', '.join(SPLITS)}")


def _png(pixels: np.ndarray) -> bytes:
    """Lossless PNG at zlib level 1: Pillow's default level (6) took about four times as long
    per scene (26 against 7 ms) for files only a tenth smaller."""
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", compress_level=PNG_LEVEL)
    return buffer.getvalue()


def _write(path: Path, payload: bytes) -> None:
    atomic.write_atomic(path, lambda handle: handle.write(payload))
