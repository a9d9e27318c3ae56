"""A gate between a model's calls and forking worker processes that will run it: a process
forked while another thread is inside a call copies that call's half-taken locks and buffers,
and the child's own calls can then hang on them. Calls share the gate; a fork waits for the
calls in flight to end and holds new ones back until the workers exist."""

from __future__ import annotations

import contextlib
import multiprocessing
import threading
from collections.abc import Iterator


def start_method() -> str:
    """How this process starts worker processes: the method set, else the platform's default
    (read without setting it)."""
    return multiprocessing.get_start_method(allow_none=True) or (
        multiprocessing.get_all_start_methods()[0])


class ForkGate:
    """Many callers at once, or one fork with no caller."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._calls = 0
        self._forking = False

    @contextlib.contextmanager
    def calling(self) -> Iterator[None]:
        """Around one model call: waits while a fork is under way."""
        with self._changed:
            self._changed.wait_for(lambda: not self._forking)
            self._calls += 1
        try:
            yield
        finally:
            with self._changed:
                self._calls -= 1
                self._changed.notify_all()

    @contextlib.contextmanager
    def forking(self) -> Iterator[None]:
        """Around forking: waits until no call is in flight, and lets none start meanwhile."""
        with self._changed:
            self._changed.wait_for(lambda: not self._forking and self._calls == 0)
            self._forking = True
        try:
            yield
        finally:
            with self._changed:
                self._forking = False
                self._changed.notify_all()
