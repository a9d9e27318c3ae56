"""`lookalike sample frames`: tiles of spaced frames of a real clip, for copy-space training."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from lookalike.services.errors import InvalidRequest
from lookalike.services.video.tiles import ClipPlan, write_frame_tiles
from tests.videoclips import OPENCV_VIDEOS, opencv_sample


def _frame(path: Path, index: int) -> np.ndarray:
    """Frame `index` of a clip as PyAV decodes it (RGB)."""
    with av.open(str(path)) as container:
        for number, frame in enumerate(container.decode(video=0)):
            if number == index:
                return frame.to_ndarray(format="rgb24")
    raise AssertionError(f"{path} has no frame {index}")


def test_every_stride_th_frame_is_cut_into_a_grid_of_tiles(tmp_path: Path) -> None:
    opencv_sample("tree.avi")  # fails with the set-up step when the clip is missing
    clip = OPENCV_VIDEOS / "tree.avi"
    written = write_frame_tiles(tmp_path, [ClipPlan(clip, stride=5, grid=2, frames=3)])
    assert written == 12
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        f"tree-{index:04d}-{row}{column}.png"
        for index in (0, 5, 10) for row in (0, 1) for column in (0, 1)]
    frame = _frame(clip, 5)
    half_h, half_w = frame.shape[0] // 2, frame.shape[1] // 2
    tile = np.asarray(Image.open(tmp_path / "tree-0005-11.png"))
    assert np.array_equal(tile, frame[half_h:2 * half_h, half_w:2 * half_w])  # PNG: lossless


def test_cli_writes_the_tiles_of_each_clip(tmp_path: Path) -> None:
    opencv_sample("tree.avi")
    result = subprocess.run([sys.executable, "-m", "lookalike.services.cli", "sample", "frames",
                             str(tmp_path / "tiles"), "--clip",
                             f"{OPENCV_VIDEOS / 'tree.avi'}:10:3:2"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "18 tiles" in result.stdout
    assert len(list((tmp_path / "tiles").glob("tree-00[01]0-*.png"))) == 18


def test_plans_parse_with_and_without_a_frame_limit() -> None:
    assert ClipPlan.parse("clips/a.avi:12:3") == ClipPlan(Path("clips/a.avi"), 12, 3, None)
    assert ClipPlan.parse("C:/v/b.mp4:5:2:7") == ClipPlan(Path("C:/v/b.mp4"), 5, 2, 7)


@pytest.mark.parametrize("text", ["a.avi", "a.avi:12", "a.avi:x:3", "a.avi:0:3", "a.avi:4:0"])
def test_a_malformed_plan_says_the_expected_form(text: str) -> None:
    with pytest.raises(InvalidRequest, match="clip plan"):
        ClipPlan.parse(text)


def test_a_missing_clip_or_an_oversized_grid_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequest, match="not a file"):
        write_frame_tiles(tmp_path, [ClipPlan(tmp_path / "none.avi", 1, 1)])
    opencv_sample("tree.avi")
    with pytest.raises(InvalidRequest, match="smaller GRID"):
        write_frame_tiles(tmp_path, [ClipPlan(OPENCV_VIDEOS / "tree.avi", 1, 1000, 1)])
