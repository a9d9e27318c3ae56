"""The rate limits' in-memory store (no broker): limits' own, trimming expired entries on a
timer that lives a second instead of 10 ms.

limits' MemoryStorage runs its clean-up on a `threading.Timer` of 10 ms and starts a new one
on every hit that finds the last one finished: on a server answering fewer than a hundred
requests a second, nearly every request started a thread on the event loop, which on the
2-core machine cost many times the hit itself. Every strategy checks an entry's time when
it reads it, so trimming expired entries less often changes only how long they stay in
memory (at most `trim_every_s` past their expiry), never a limit's answer.
"""

from __future__ import annotations

import threading

from limits.storage import MemoryStorage

TRIM_EVERY_S = 1.0


class TrimmedMemoryStorage(MemoryStorage):
    """limits' MemoryStorage whose clean-up timer, once started, runs `trim_every_s`."""

    def __init__(self, trim_every_s: float = TRIM_EVERY_S) -> None:
        self.trim_every_s = trim_every_s
        super().__init__()

    def _MemoryStorage__schedule_expiry(self) -> None:  # noqa: N802 - limits' private hook
        """Start the clean-up timer unless one is waiting (limits' method, with our delay)."""
        if not self.timer.is_alive():
            self.timer = threading.Timer(self.trim_every_s, self._MemoryStorage__expire_events)
            self.timer.daemon = True
            self.timer.start()
