"""Synthetic clips written with PyAV for the video tests: shots of known colours and lengths,
each with a slowly moving gradient, so cuts and frame times are known exactly; and a fixed
scene where only a small detail moves, whose moments only a fine comparison tells apart."""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import av
import numpy as np

from tests.imagefactory import photo

FPS = 25
SIZE = (96, 64)  # width, height


@dataclass(frozen=True)
class Shot:
    """One shot: how many frames it lasts and its base RGB colour."""

    frames: int
    colour: tuple[int, int, int]


def shot_frames(shot: Shot, index: int, size: tuple[int, int] = SIZE) -> np.ndarray:
    """Frame `index` of a shot: its colour plus a diagonal gradient moving one pixel a frame."""
    width, height = size
    ramp = (np.arange(width)[None, :] + np.arange(height)[:, None] + index) % 64
    pixels = np.asarray(shot.colour, dtype=np.int16)[None, None, :] + ramp[..., None] - 32
    return np.clip(pixels, 0, 255).astype(np.uint8)


def write_clip(
    shots: Sequence[Shot],
    *,
    container: str = "mp4",
    codec: str = "mpeg4",
    fps: int = FPS,
    size: tuple[int, int] = SIZE,
) -> bytes:
    """Encode the shots one after the other into a clip; return the file's bytes."""
    frames = (shot_frames(shot, index, size) for shot in shots for index in range(shot.frames))
    return write_frames(frames, container=container, codec=codec, fps=fps, size=size)


def write_frames(
    frames: Iterable[np.ndarray],
    *,
    container: str = "mp4",
    codec: str = "mpeg4",
    fps: int = FPS,
    size: tuple[int, int] = SIZE,
    rotation: int = 0,
) -> bytes:
    """Encode RGB frames (height, width, 3) uint8 of `size` into a clip; the file's bytes.
    A `rotation` (degrees counter-clockwise) goes into the display matrix, as a phone
    writes one for a clip filmed upright (-90)."""
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format=container) as output:
        stream = output.add_stream(codec, rate=fps)
        stream.width, stream.height = size
        if rotation:
            stream.set_display_rotation(rotation)
        stream.pix_fmt = "yuv420p"
        stream.options = {"qscale": "2"} if codec == "mpeg4" else {}
        for pixels in frames:
            rgb = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            output.mux(stream.encode(rgb))
        output.mux(stream.encode(None))
    return buffer.getvalue()


def moving_detail_frames(count: int, *, size: tuple[int, int] = (256, 192),
                         patch: int = 24) -> list[np.ndarray]:
    """A fixed camera on a textured scene (the astronaut photo) where only a small textured
    patch moves, left to right along a line, over `count` frames: one global vector per frame
    hardly tells them apart, the aligned pixels do."""
    width, height = size
    scene = photo("astronaut", size)
    texture = np.asarray(photo("coffee", (patch, patch)))
    frames = []
    for index in range(count):
        pixels = np.asarray(scene).copy()
        left = round(8 + (width - patch - 16) * index / max(1, count - 1))
        top = height // 2 + round(height / 4 * np.sin(index / max(1, count - 1) * np.pi))
        top = min(top, height - patch)
        pixels[top:top + patch, left:left + patch] = texture
        frames.append(pixels)
    return frames


def cut_times(shots: Sequence[Shot], fps: int = FPS) -> list[float]:
    """The start time in seconds of every shot after the first."""
    starts = np.cumsum([shot.frames for shot in shots])[:-1]
    return [float(start) / fps for start in starts]
