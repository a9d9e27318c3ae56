"""The fork gate lets calls run together, holds a fork back until they end, and holds new
calls back while a fork is under way."""

from __future__ import annotations

import multiprocessing
import threading
from concurrent.futures import ThreadPoolExecutor

from lookalike.retrieval.embedding.fork_gate import ForkGate, start_method

WAIT_S = 10.0


def test_a_fork_waits_for_the_calls_in_flight_and_holds_new_ones_back() -> None:
    gate = ForkGate()
    order: list[str] = []
    inside, release = threading.Event(), threading.Event()
    forking, forked = threading.Event(), threading.Event()

    def long_call() -> None:
        with gate.calling():
            inside.set()
            release.wait(WAIT_S)
            order.append("first call ends")

    def fork() -> None:
        with gate.forking():
            forking.set()
            order.append("fork")
            forked.wait(WAIT_S)

    def late_call() -> None:
        with gate.calling():
            order.append("late call")

    with ThreadPoolExecutor(3) as pool:
        first = pool.submit(long_call)
        assert inside.wait(WAIT_S)
        with gate.calling():  # calls share the gate
            order.append("second call")
        forker = pool.submit(fork)
        assert not forking.wait(0.2)  # the first call is still in flight
        release.set()
        first.result(WAIT_S)
        assert forking.wait(WAIT_S)
        late = pool.submit(late_call)
        assert not late.done()
        forked.set()
        forker.result(WAIT_S)
        late.result(WAIT_S)
    assert order == ["second call", "first call ends", "fork", "late call"]


def test_the_start_method_is_read_without_being_set() -> None:
    before = multiprocessing.get_start_method(allow_none=True)
    assert start_method() in multiprocessing.get_all_start_methods()
    assert multiprocessing.get_start_method(allow_none=True) == before
