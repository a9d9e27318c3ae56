"""A child process that writes ingest batches to the catalog while the model runs.

A writer thread was the first version: its Python work (building rows, SQLAlchemy) held the
GIL that the model's thread needs between operations, and cost the model ~15% of its speed.
A process has its own GIL. It is forked, so it starts at once without importing anything,
and opens its own database connections (none are shared with the parent).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import queue
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from typing import Any

import numpy as np

from lookalike.services.config import Settings
from lookalike.services.runtime import Runtime

log = logging.getLogger(__name__)

PARENT_POLL_S = 1.0
STOP = None


@dataclass(frozen=True)
class WriteRequest:
    """One embedded batch: what `write` needs, all picklable."""

    prepared: list[Any]
    vectors: list[np.ndarray | None]
    items: list[Any]


@dataclass(frozen=True)
class WriteFailed:
    """The writer's exception, or its text when the exception cannot be pickled."""

    error: BaseException | str


Write = Callable[[Runtime, int, WriteRequest], list[Any]]


class CatalogWriter:
    """Send batches with `submit`, collect each batch's outcomes, in order, with `result`."""

    def __init__(self, settings: Settings, space_id: int, write: Write) -> None:
        context = multiprocessing.get_context("fork")
        self._requests: multiprocessing.Queue[WriteRequest | None] = context.Queue()
        self._results: multiprocessing.Queue[list[Any] | WriteFailed] = context.Queue()
        self._process: BaseProcess = context.Process(
            target=_serve, args=(settings, space_id, write, self._requests, self._results,
                                 os.getpid()),
            name="catalog-writer", daemon=True)
        self._process.start()

    def submit(self, request: WriteRequest) -> None:
        self._requests.put(request)

    def result(self) -> list[Any]:
        """The outcomes of the oldest batch not collected yet; re-raises the writer's error."""
        while True:
            try:
                answer = self._results.get(timeout=PARENT_POLL_S)
                break
            except queue.Empty:
                if not self._process.is_alive():
                    raise RuntimeError("the catalog writer process died (exit code "
                                       f"{self._process.exitcode}); run the ingest again: "
                                       "it resumes without duplicates") from None
        if isinstance(answer, WriteFailed):
            if isinstance(answer.error, BaseException):
                raise answer.error
            raise RuntimeError(f"the catalog writer failed: {answer.error}")
        return answer

    def close(self) -> None:
        """Stop the process once it has written what it was sent."""
        self._requests.put(STOP)
        self._process.join()


def _serve(settings: Settings, space_id: int, write: Write,
           requests: multiprocessing.Queue, results: multiprocessing.Queue,
           parent: int) -> None:
    """The child: write each request and answer with its outcomes, until STOP or the parent
    is gone (a killed ingest must not leave a writer behind). Its own Runtime opens its own
    database connections."""
    runtime = Runtime(settings)
    try:
        _answer(runtime, space_id, write, requests, results, parent)
    finally:
        runtime.close()


def _answer(runtime: Runtime, space_id: int, write: Write, requests: multiprocessing.Queue,
            results: multiprocessing.Queue, parent: int) -> None:
    while True:
        try:
            request = requests.get(timeout=PARENT_POLL_S)
        except queue.Empty:
            if os.getppid() != parent:
                return
            continue
        if request is STOP:
            return
        try:
            results.put(write(runtime, space_id, request))
        except Exception as exc:  # sent to the parent, which raises it
            log.exception("catalog writer failed")
            results.put(_failure(exc))


def _failure(exc: Exception) -> WriteFailed:
    import pickle  # noqa: PLC0415 - only on the error path

    try:
        pickle.dumps(exc)
    except Exception:  # an exception that cannot travel is sent as its text
        return WriteFailed(f"{type(exc).__name__}: {exc}")
    return WriteFailed(exc)

