"""Labelled clips generated from still images: an item (a Fashion-MNIST picture) moving over
a photo background, for the video classifiers' two tasks.

`motion`: the class is how the item moves (left, right, up, down, rotate clockwise or
anticlockwise, zoom in or out), its picture, start and speed random. Pairs such as left and
right show the same set of frames in opposite orders, so a model that averages over frames
cannot tell them apart; a 3-D convolution over time can. `appearance`: the class is the
item's, its motion random.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from PIL import Image

MOTIONS: tuple[str, ...] = ("left", "right", "up", "down", "rotate_cw", "rotate_ccw",
                            "zoom_in", "zoom_out")
TASKS: tuple[str, ...] = ("motion", "appearance")


@dataclass(frozen=True)
class ClipSpec:
    """Frames per clip, frame side in pixels, and the item's side in pixels at scale 1."""

    frames: int = 8
    size: int = 32
    item: int = 16


def render_clip(item: npt.NDArray[np.uint8], background: npt.NDArray[np.uint8], motion: str,
                rng: np.random.Generator, spec: ClipSpec) -> npt.NDArray[np.uint8]:
    """(T, size, size, 3) uint8 frames of `item` (28x28 grey) moving by `motion` over a random
    crop of `background` (H, W, 3)."""
    if motion not in MOTIONS:
        raise ValueError(f"unknown motion {motion!r}; available: {', '.join(MOTIONS)}")
    backdrop = _backdrop(background, rng, spec.size)
    sprite = Image.fromarray(item).resize((spec.item, spec.item), Image.Resampling.BILINEAR)
    speed = float(rng.uniform(0.6, 1.0))
    start = rng.uniform(-0.15, 0.15, 2) * spec.size
    frames = [_compose(backdrop, sprite, *_pose(motion, step / (spec.frames - 1), speed, start,
                                                spec))
              for step in range(spec.frames)]
    return np.stack(frames)


def _backdrop(background: npt.NDArray[np.uint8], rng: np.random.Generator,
              size: int) -> Image.Image:
    """A random square crop of the photo, darkened so the bright item stands out."""
    height, width = background.shape[:2]
    side = int(rng.integers(min(height, width) // 4, min(height, width) // 2 + 1))
    top = int(rng.integers(0, height - side + 1))
    left = int(rng.integers(0, width - side + 1))
    crop = Image.fromarray(background[top:top + side, left:left + side])
    pixels = np.asarray(crop.resize((size, size), Image.Resampling.BILINEAR), np.float32)
    return Image.fromarray((pixels * 0.5).astype(np.uint8))


def _pose(motion: str, phase: float, speed: float, start: npt.NDArray[np.float64],
          spec: ClipSpec) -> tuple[float, float, float, float]:
    """(x offset, y offset, angle in degrees, scale) of the item at phase 0..1."""
    travel = (phase - 0.5) * speed * spec.size * 0.6
    shifts = {"left": (-travel, 0.0), "right": (travel, 0.0), "up": (0.0, -travel),
              "down": (0.0, travel)}
    x, y = shifts.get(motion, (0.0, 0.0))
    angle = {"rotate_cw": -1.0, "rotate_ccw": 1.0}.get(motion, 0.0) * 180 * speed * phase
    zoom = {"zoom_in": 1.0, "zoom_out": -1.0}.get(motion, 0.0) * (phase - 0.5) * speed
    return float(start[0] + x), float(start[1] + y), angle, 1.0 + 0.8 * zoom


def _compose(backdrop: Image.Image, sprite: Image.Image, x: float, y: float, angle: float,
             scale: float) -> npt.NDArray[np.uint8]:
    """The backdrop with the item pasted at its pose, the item's brightness as its mask."""
    side = max(2, round(sprite.width * scale))
    posed = sprite.resize((side, side), Image.Resampling.BILINEAR).rotate(
        angle, resample=Image.Resampling.BILINEAR)
    frame = backdrop.copy()
    corner = (round(backdrop.width / 2 + x - side / 2), round(backdrop.height / 2 + y - side / 2))
    frame.paste(Image.merge("RGB", (posed, posed, posed)), corner, mask=posed)
    return np.asarray(frame, dtype=np.uint8)


def make_clips(items: npt.NDArray[np.uint8], item_labels: npt.NDArray[np.int64],
               backgrounds: list[npt.NDArray[np.uint8]], *, task: str, count: int, seed: int,
               spec: ClipSpec = ClipSpec(), motions: tuple[str, ...] = MOTIONS,
               ) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64]]:
    """`count` clips (N, T, S, S, 3) and their labels for a task, reproducible from `seed`;
    `motions` limits the motions drawn (for `motion`, label i is motions[i])."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; available: {', '.join(TASKS)}")
    rng = np.random.default_rng(seed)
    clips, labels = [], []
    for _ in range(count):
        index = int(rng.integers(0, len(items)))
        motion = int(rng.integers(0, len(motions)))
        background = backgrounds[int(rng.integers(0, len(backgrounds)))]
        clips.append(render_clip(items[index], background, motions[motion], rng, spec))
        labels.append(motion if task == "motion" else int(item_labels[index]))
    return np.stack(clips), np.asarray(labels, dtype=np.int64)
