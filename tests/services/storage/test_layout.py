"""Paths the catalog records: relative to the home, whatever the working directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from lookalike.services.config import Settings
from lookalike.services.storage.layout import DataLayout


def test_a_relative_home_is_made_absolute_once_against_the_working_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LOOKALIKE_HOME", "data/home")
    settings = Settings()
    monkeypatch.chdir("/")
    assert settings.home == tmp_path / "data" / "home"
    assert settings.catalog_url == f"sqlite:///{tmp_path / 'data' / 'home' / 'catalog.db'}"
    monkeypatch.delenv("LOOKALIKE_HOME")
    assert Settings().home == Path("/lookalike-data"), "the default is made absolute too"


def test_files_under_the_home_are_recorded_relative_to_it_and_others_absolute(
        tmp_path: Path) -> None:
    layout = DataLayout(tmp_path / "home")
    original = layout.originals / "ab" / "cd" / "abcd.png"
    assert layout.stored(original) == "originals/ab/cd/abcd.png"
    assert layout.resolve("originals/ab/cd/abcd.png") == original
    assert DataLayout(tmp_path / "moved").resolve("originals/ab/cd/abcd.png") == \
        tmp_path / "moved" / "originals" / "ab" / "cd" / "abcd.png"
    given = tmp_path / "mine.pth"
    assert layout.stored(given) == str(given)
    assert layout.resolve(str(given)) == given
    assert layout.stored(layout.home / "weights" / ".." / ".." / "x.pt") == str(tmp_path / "x.pt")
    with pytest.raises(ValueError, match="not absolute"):
        layout.stored(Path("home/originals/x.png"))
