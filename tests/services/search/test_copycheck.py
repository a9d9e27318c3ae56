"""Ingest's copy check: flag stores and reports copies, skip leaves them out."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lookalike.retrieval.training.copyedits import apply_edit
from lookalike.services.errors import InvalidRequest, NotCalibrated
from lookalike.services.ingest.sources import collect_items
from lookalike.services.runtime import Runtime
from lookalike.services.sample import bundled_photos
from lookalike.services.search.copycheck import screen_items
from tests.services.api.test_copies import calibrate


def new_files(folder: Path) -> list[Path]:
    """A perspective copy of the rocket photo and a new picture (seeded noise)."""
    folder.mkdir()
    rocket = next(p for p in bundled_photos() if p.name == "rocket").image
    apply_edit(rocket, "perspective", 8, strength=0.8).save(folder / "rocket-copy.jpg")
    noise = np.random.default_rng(1).integers(0, 256, size=(120, 160, 3), dtype=np.uint8)
    Image.fromarray(noise).save(folder / "new.png")
    return sorted(folder.iterdir())


def test_flag_keeps_everything_and_skip_leaves_copies_out(photo_home: Runtime,
                                                          tmp_path: Path) -> None:
    items = collect_items(new_files(tmp_path / "new"))
    with pytest.raises(NotCalibrated):
        screen_items(photo_home, items, on_copy="flag")
    calibrate(photo_home)
    flagged = screen_items(photo_home, items, on_copy="flag")
    skipped = screen_items(photo_home, items, on_copy="skip")
    assert len(flagged.kept) == 2 and list(flagged.copies) == [str(items[1].path)]
    assert [item.path.name for item in skipped.kept] == ["new.png"]
    assert skipped.copies == flagged.copies and len(skipped.copies[str(items[1].path)]) == 1
    with pytest.raises(InvalidRequest, match="flag, skip"):
        screen_items(photo_home, items, on_copy="refuse")
