"""`lookalike backup DIR` and `lookalike restore DIR` as a user runs them (in-process)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import Result
from typer.testing import CliRunner

from lookalike.services.cli.main import app
from lookalike.services.config import get_settings
from lookalike.services.errors import BackupError
from tests.services.storage.test_backup import home_with_a_space_file


@pytest.fixture
def run(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Result]]:
    """Run a command with LOOKALIKE_HOME set to a folder, settings read afresh."""

    def invoke(home: Path, *args: str) -> Result:
        monkeypatch.setenv("LOOKALIKE_HOME", str(home))
        monkeypatch.delenv("LOOKALIKE_DATABASE_URL", raising=False)
        get_settings.cache_clear()
        return CliRunner().invoke(app, list(args))

    yield invoke
    get_settings.cache_clear()


def test_backup_then_restore_into_a_new_home_and_never_into_a_used_one(
        tmp_path: Path, run: Callable[..., Result]) -> None:
    home_with_a_space_file(tmp_path / "home", None)
    done = run(tmp_path / "home", "backup", str(tmp_path / "backup"))
    assert done.exit_code == 0, done.output
    assert "backed up 0 originals, 1 space files and 0 index snapshots" in done.output
    restored = run(tmp_path / "new", "restore", str(tmp_path / "backup"))
    assert restored.exit_code == 0, restored.output
    assert f"restored the catalog to {tmp_path / 'new' / 'catalog.db'} and 2 files" in \
        restored.output
    again = run(tmp_path / "new", "restore", str(tmp_path / "backup"))
    assert isinstance(again.exception, BackupError) and "not empty" in str(again.exception)
