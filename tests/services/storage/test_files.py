"""Stored originals: written whole or not at all, made durable per batch, repaired if short."""

from __future__ import annotations

from pathlib import Path

from lookalike.services.storage.files import original_path, sync_originals, write_original


def test_an_original_is_written_whole_and_no_temp_file_stays(tmp_path: Path) -> None:
    path = original_path(tmp_path, "ab" * 32, "JPEG")
    write_original(path, b"jpeg bytes")
    sync_originals(tmp_path)
    assert path.read_bytes() == b"jpeg bytes"
    assert [p.name for p in path.parent.iterdir()] == [path.name]


def test_a_short_file_left_by_a_crash_is_written_again(tmp_path: Path) -> None:
    path = original_path(tmp_path, "cd" * 32, "PNG")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"")
    write_original(path, b"png bytes")
    assert path.read_bytes() == b"png bytes"


def test_a_whole_existing_file_is_kept(tmp_path: Path) -> None:
    path = original_path(tmp_path, "ef" * 32, "PNG")
    write_original(path, b"first")
    before = path.stat().st_mtime_ns
    write_original(path, b"first")
    assert path.stat().st_mtime_ns == before
