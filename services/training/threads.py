"""Torch threads for a training epoch: every core the settings give training.

A process's model threads are set for serving and ingest, where decode workers share the
cores (setup.configure_threads); no decoding runs beside a training epoch, so it takes the
cores they leave idle, and gives them back when it ends."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

from lookalike.services.config import Settings


@contextmanager
def training_threads(settings: Settings) -> Iterator[int]:
    """Run the block with `settings.train_threads` torch threads (set in the calling
    thread, which runs the epoch's forward and backward passes); restore them after."""
    before = torch.get_num_threads()
    threads = settings.train_threads or 1
    torch.set_num_threads(threads)
    try:
        yield threads
    finally:
        torch.set_num_threads(before)
