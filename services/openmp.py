"""FAISS's OpenMP thread count, which OpenMP reads from OMP_NUM_THREADS once, as it loads
(with torch, before FAISS): set by the `lookalike` entry point before any command module
imports either, and checked when a runtime opens.

OpenMP's own setter (and torch.set_num_threads, which calls it) reaches only the thread
that calls it: every other thread, the server's request threads among them, starts from
the count read at load, so the environment is the one place that works. An OMP_NUM_THREADS
already set is the operator's and stays. With more threads than asked, OpenMP's idle
workers spin after each search on the cores the model needs."""

from __future__ import annotations

import logging
import os
import threading

from lookalike.services.config import Settings

OPENMP_THREADS = "OMP_NUM_THREADS"

log = logging.getLogger(__name__)


def set_openmp_threads(settings: Settings) -> None:
    """Put LOOKALIKE_INDEX_THREADS where OpenMP will read it, unless the operator set it."""
    os.environ.setdefault(OPENMP_THREADS, str(settings.index_threads))


def check_openmp_threads(settings: Settings) -> None:
    """Warn when FAISS would search on another thread count than asked in a new thread (as a
    request's): it loaded before the count was set, in a process not started by the
    `lookalike` command, which should set OMP_NUM_THREADS in its environment instead."""
    import faiss  # noqa: PLC0415 - loaded by every runtime anyway; here only to be read

    wanted = int(os.environ.get(OPENMP_THREADS, settings.index_threads))
    seen: list[int] = []
    reader = threading.Thread(target=lambda: seen.append(faiss.omp_get_max_threads()))
    reader.start()
    reader.join()
    if seen[0] != wanted:
        log.warning("FAISS runs %d OpenMP threads, not %d: it was loaded before %s was set; "
                    "start the process with %s=%d in its environment", seen[0], wanted,
                    OPENMP_THREADS, OPENMP_THREADS, wanted)
