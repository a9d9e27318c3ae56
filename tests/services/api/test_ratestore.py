"""The in-memory rate-limit store (services/api/ratestore.py): the limits a caller gets are
limits' own, hits spaced past limits' 10 ms clean-up start no thread each, and expired
entries still leave memory."""

from __future__ import annotations

import threading
import time

from limits import parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from lookalike.services.api.ratestore import TrimmedMemoryStorage


def started_threads(storage: MemoryStorage, hits: int, gap_s: float) -> int:
    """Threads started while `hits` hits, `gap_s` apart, go through a limiter on `storage`."""
    limiter = MovingWindowRateLimiter(storage)
    item = parse("1000/second")
    limiter.hit(item, "first")
    started = []
    original = threading.Thread.start

    def counted(thread: threading.Thread) -> None:
        started.append(thread)
        original(thread)

    threading.Thread.start = counted  # type: ignore[method-assign]
    try:
        for _ in range(hits):
            time.sleep(gap_s)
            limiter.hit(item, "caller")
    finally:
        threading.Thread.start = original  # type: ignore[method-assign]
    return len(started)


def test_hits_spaced_past_10_ms_share_one_clean_up_thread() -> None:
    assert started_threads(MemoryStorage(), hits=8, gap_s=0.02) >= 7  # limits' own store
    assert started_threads(TrimmedMemoryStorage(trim_every_s=5.0), hits=8, gap_s=0.02) <= 1


def test_the_limits_are_limits_own() -> None:
    limiter = MovingWindowRateLimiter(TrimmedMemoryStorage())
    item = parse("3/second")
    assert [limiter.hit(item, "caller") for _ in range(4)] == [True, True, True, False]
    assert limiter.hit(item, "another caller")
    time.sleep(1.05)
    assert limiter.hit(item, "caller")


def test_expired_entries_leave_memory_at_the_next_trim() -> None:
    storage = TrimmedMemoryStorage(trim_every_s=0.2)
    limiter = MovingWindowRateLimiter(storage)
    item = parse("5/second")
    for _ in range(5):
        limiter.hit(item, "caller")
    time.sleep(1.1)  # the caller's entries have expired; a later hit schedules a trim
    limiter.hit(item, "another caller")
    deadline = time.monotonic() + 5
    while _holding(storage) != ["another caller"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _holding(storage) == ["another caller"]


def _holding(storage: MemoryStorage) -> list[str]:
    """The callers whose entries the store still keeps (keys are LIMITER/caller/limit)."""
    return [key.split("/")[1] for key, entries in storage.events.items() if entries]
