"""Synthetic clips written with PyAV for the video tests: shots of known colours and lengths,
each with a slowly moving gradient, so cuts and frame times are known exactly."""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

import av
import numpy as np

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
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format=container) as output:
        stream = output.add_stream(codec, rate=fps)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.options = {"qscale": "2"} if codec == "mpeg4" else {}
        for shot in shots:
            for index in range(shot.frames):
                rgb = av.VideoFrame.from_ndarray(shot_frames(shot, index, size), format="rgb24")
                output.mux(stream.encode(rgb))
        output.mux(stream.encode(None))
    return buffer.getvalue()


def cut_times(shots: Sequence[Shot], fps: int = FPS) -> list[float]:
    """The start time in seconds of every shot after the first."""
    starts = np.cumsum([shot.frames for shot in shots])[:-1]
    return [float(start) / fps for start in starts]
