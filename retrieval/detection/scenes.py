"""Synthetic detection scenes: small objects cut from glyph images, pasted on real photos.

No detection dataset ships in any package, so scenes are generated: each object is a grey
glyph (a Fashion-MNIST item, an OpenCV digit) whose mask comes from its intensity; it is
scaled, rotated and coloured, then pasted 1-6 times per scene, with partial overlap, on a
crop of a real photo. The same seed gives the same scenes, byte for byte.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

MASK_THRESHOLD = 40  # glyph intensity (0-255) above which a pixel belongs to the object
MAX_OVERLAP = 0.3  # largest IoU of a new box with any box already in the scene
_PLACEMENT_TRIES = 30


@dataclass(frozen=True)
class Glyphs:
    """Grey object images (N, h, w) uint8 with their class index (N,) into `classes`."""

    images: np.ndarray
    labels: np.ndarray
    classes: tuple[str, ...]


@dataclass(frozen=True)
class SceneSpec:
    """How scenes look: side in pixels, object size range (pixels) and count range."""

    size: int = 320
    min_object: int = 24
    max_object: int = 160
    min_objects: int = 1
    max_objects: int = 6
    max_angle: float = 30.0
    min_visible: float = 0.0  # share of an object's pixels no later object may cover

    def check(self) -> None:
        """Raise ValueError on sizes or counts that cannot make a scene."""
        if not 0 < self.min_object <= self.max_object <= self.size:
            raise ValueError(
                f"object sizes must satisfy 0 < min ({self.min_object}) <= max "
                f"({self.max_object}) <= scene size ({self.size})")
        if not 1 <= self.min_objects <= self.max_objects:
            raise ValueError(f"object counts must satisfy 1 <= min ({self.min_objects}) <= max "
                             f"({self.max_objects})")
        if not 0.0 <= self.min_visible <= 1.0:
            raise ValueError(f"min_visible must be within [0, 1], got {self.min_visible}")


DEFAULT_SPEC = SceneSpec()


@dataclass(frozen=True)
class SceneObject:
    """One pasted object: class index, box (x0, y0, x1, y1; x1/y1 exclusive) and its mask."""

    label: int
    box: tuple[int, int, int, int]
    mask: np.ndarray  # (size, size) bool: the object's pixels where it was pasted


@dataclass(frozen=True)
class Scene:
    """One generated image (H, W, 3) uint8 and its objects, pasted in list order."""

    image: np.ndarray
    objects: tuple[SceneObject, ...]


def generate_scenes(glyphs: Glyphs, backgrounds: Sequence[np.ndarray], *, count: int,
                    seed: int | Sequence[int], spec: SceneSpec = DEFAULT_SPEC) -> list[Scene]:
    """`count` scenes drawn with one generator seeded by `seed` (an int, or ints such as
    (seed, epoch)): the same arguments give the same scenes."""
    spec.check()
    if len(glyphs.images) == 0 or not backgrounds:
        raise ValueError("scenes need at least one glyph and one background photo")
    rng = np.random.default_rng(seed)
    by_class = [np.flatnonzero(glyphs.labels == c) for c in np.unique(glyphs.labels)]
    return [_scene(glyphs, by_class, backgrounds, rng, spec) for _ in range(count)]


def _scene(glyphs: Glyphs, by_class: Sequence[np.ndarray], backgrounds: Sequence[np.ndarray],
           rng: np.random.Generator, spec: SceneSpec) -> Scene:
    """One scene: a background crop and up to the drawn number of non-crowding objects, each
    of a class drawn uniformly (sources hold very different counts per class), then an item."""
    canvas = _background_crop(backgrounds[int(rng.integers(len(backgrounds)))], rng, spec.size)
    wanted = int(rng.integers(spec.min_objects, spec.max_objects + 1))
    objects: list[SceneObject] = []
    visible: list[np.ndarray] = []  # with min_visible: each object's pixels still in view
    for _ in range(wanted):
        members = by_class[int(rng.integers(len(by_class)))]
        index = int(members[rng.integers(len(members))])
        placed = _paste(canvas, glyphs.images[index], rng, spec, objects, visible)
        if placed is not None:
            objects.append(SceneObject(int(glyphs.labels[index]), *placed))
            if spec.min_visible:
                visible.append(placed[1].copy())
    return Scene(canvas, tuple(objects))


def _background_crop(photo: np.ndarray, rng: np.random.Generator, size: int) -> np.ndarray:
    """A random square crop of `photo` (at least half its short side), resized to size x size."""
    height, width = photo.shape[:2]
    short = min(height, width)
    side = int(rng.integers(short // 2, short + 1))
    top = int(rng.integers(0, height - side + 1))
    left = int(rng.integers(0, width - side + 1))
    crop = Image.fromarray(photo[top:top + side, left:left + side])
    return np.array(crop.resize((size, size), Image.Resampling.BILINEAR), dtype=np.uint8)


def _object(glyph: np.ndarray, rng: np.random.Generator,
            spec: SceneSpec) -> tuple[np.ndarray, np.ndarray]:
    """The glyph scaled to a drawn size and rotated: (alpha float32 in [0, 1], mask bool)."""
    side = int(rng.integers(spec.min_object, spec.max_object + 1))
    angle = float(rng.uniform(-spec.max_angle, spec.max_angle))
    scaled = Image.fromarray(glyph).resize((side, side), Image.Resampling.BILINEAR)
    rotated = np.asarray(scaled.rotate(angle, Image.Resampling.BILINEAR, expand=True))
    mask = rotated > MASK_THRESHOLD
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    trimmed = rotated[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    alpha = np.clip(trimmed.astype(np.float32) / 255.0 * 1.5, 0.0, 1.0)
    return alpha, mask[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]


def _paste(canvas: np.ndarray, glyph: np.ndarray, rng: np.random.Generator, spec: SceneSpec,
           placed: Sequence[SceneObject], visible: list[np.ndarray]
           ) -> tuple[tuple[int, int, int, int], np.ndarray] | None:
    """Paste one coloured object where it overlaps earlier boxes at most MAX_OVERLAP (IoU)
    and leaves each earlier object at least `spec.min_visible` of its pixels in view (a box
    IoU bound alone lets a large object hide a small one whole); `visible` is updated."""
    if not (glyph > MASK_THRESHOLD).any():
        return None
    alpha, mask = _object(glyph, rng, spec)
    height, width = mask.shape
    if height > spec.size or width > spec.size:
        return None
    colour = rng.integers(40, 256, size=3).astype(np.float32)
    for _ in range(_PLACEMENT_TRIES):
        top = int(rng.integers(0, spec.size - height + 1))
        left = int(rng.integers(0, spec.size - width + 1))
        box = (left, top, left + width, top + height)
        if any(box_iou(box, other.box) > MAX_OVERLAP for other in placed):
            continue
        full = np.zeros(canvas.shape[:2], dtype=bool)
        full[top:top + height, left:left + width] = mask
        if spec.min_visible and not all(
                (seen & ~full).sum() >= spec.min_visible * other.mask.sum()
                for seen, other in zip(visible, placed, strict=True)):
            continue
        _blend(canvas, alpha, mask, colour, top, left)
        if spec.min_visible:
            for seen in visible:
                seen &= ~full
        return box, full
    return None


def _blend(canvas: np.ndarray, alpha: np.ndarray, mask: np.ndarray, colour: np.ndarray,
           top: int, left: int) -> None:
    """Write the object into `canvas` in place: its mask pixels become the shaded colour."""
    height, width = mask.shape
    region = canvas[top:top + height, left:left + width].astype(np.float32)
    shaded = colour * (0.35 + 0.65 * alpha[..., None])
    region[mask] = shaded[mask]
    canvas[top:top + height, left:left + width] = np.round(region).astype(np.uint8)


def visible_shares(scene: Scene) -> list[float]:
    """Each object's share of its pasted pixels that no object pasted after it covers."""
    shares = []
    covered = np.zeros(scene.image.shape[:2], dtype=bool)
    for item in reversed(scene.objects):
        shares.append(float((item.mask & ~covered).sum() / item.mask.sum()))
        covered |= item.mask
    return shares[::-1]


def box_iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    """Intersection over union of two (x0, y0, x1, y1) boxes."""
    width = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = width * height
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def mask_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    """The tight (x0, y0, x1, y1) box of a boolean mask (x1/y1 exclusive)."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1
