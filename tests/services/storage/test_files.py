"""Stored files: written whole or not at all, made durable per batch, and trusted only when
their bytes hash to what they must hold (a zero-filled or short file is written again)."""

from __future__ import annotations

from pathlib import Path

from lookalike.services.storage.files import (
    original_path,
    sync_originals,
    write_atomic,
    write_original,
)


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


def test_a_zero_filled_original_of_the_right_size_is_written_again(tmp_path: Path) -> None:
    path = original_path(tmp_path, "12" * 32, "JPEG")
    path.parent.mkdir(parents=True)
    path.write_bytes(bytes(len(b"jpeg bytes")))
    write_original(path, b"jpeg bytes")
    assert path.read_bytes() == b"jpeg bytes"


def test_a_whole_existing_file_is_kept(tmp_path: Path) -> None:
    path = original_path(tmp_path, "ef" * 32, "PNG")
    write_original(path, b"first")
    before = path.stat().st_mtime_ns
    write_original(path, b"first")
    assert path.stat().st_mtime_ns == before


def test_a_stored_whitening_or_weight_file_that_changed_on_disk_is_written_again(
        tmp_path: Path) -> None:
    path = tmp_path / "whitening" / f"{'34' * 32}.npz"
    write_atomic(path, b"npz bytes")
    before = path.stat().st_mtime_ns
    write_atomic(path, b"npz bytes")
    assert path.stat().st_mtime_ns == before
    path.write_bytes(bytes(len(b"npz bytes")))
    write_atomic(path, b"npz bytes")
    assert path.read_bytes() == b"npz bytes"
