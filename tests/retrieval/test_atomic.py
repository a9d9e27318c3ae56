"""Crash-safe writes: the batch sync that every ingest batch and upload waits on."""

from __future__ import annotations

import resource
from pathlib import Path

from lookalike.retrieval import atomic


def _faults_of_finished_children() -> int:
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_minflt


def test_syncing_a_batch_starts_no_child_process(tmp_path: Path) -> None:
    """A child process (such as `ldconfig -p`, which looking libc up by name runs) is a fork
    of the whole server with its models for every ingest batch and upload."""
    atomic.write_atomic(tmp_path / "original.jpg", lambda handle: handle.write(b"bytes"),
                        durable=False)
    before = _faults_of_finished_children()
    for _ in range(3):
        atomic.sync_filesystem(tmp_path)
    assert _faults_of_finished_children() == before
    assert (tmp_path / "original.jpg").read_bytes() == b"bytes"
