"""Crash-safe file writes: readers see either no file or the whole, fsynced file."""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def fsync_directory(directory: Path) -> None:
    """Make a rename durable: fsync the directory entry itself (a no-op where unsupported)."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


def sync_filesystem(directory: Path) -> None:
    """Flush every file written on `directory`'s filesystem to disk: one syncfs(2) call makes
    a whole batch of `durable=False` writes durable (os.sync where syncfs is missing)."""
    syncfs = _syncfs()
    if syncfs is None:
        os.sync()
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        if syncfs(fd) != 0:
            error = ctypes.get_errno()
            raise OSError(error, f"syncfs failed on {directory}: {os.strerror(error)}")
    finally:
        os.close(fd)


@functools.cache
def _syncfs() -> Callable[[int], int] | None:
    """libc's syncfs(2) from the symbols already loaded into the process, looked up once:
    `ctypes.util.find_library` ran `ldconfig -p` in a child process on every call, a fork of
    the whole server (torch and the models loaded) for every ingest batch and upload."""
    function: Callable[[int], int] | None = getattr(ctypes.CDLL(None, use_errno=True),
                                                     "syncfs", None)
    return function


def write_atomic(path: Path, fill: Callable[[BinaryIO], object], *, durable: bool = True) -> None:
    """Write `path` through `fill` into a hidden temp file beside it (`.<name>.*.tmp`, which
    folder listings skip), fsync it, rename it over `path`, and fsync the folder; on any
    error the temp file is removed. `durable=False` skips both fsyncs: readers still see a
    whole file or none, and the caller makes a batch durable with `sync_filesystem`."""
    if not path.parent.is_dir():
        path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            fill(handle)
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    if durable:
        fsync_directory(path.parent)
