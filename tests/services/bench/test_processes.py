"""A benchmark charges a server the CPU time of its whole process tree."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from lookalike.services.bench.processes import tree_cpu_seconds

SPINNER = ("import time\n"
           "end = time.process_time() + 0.8\n"
           "while time.process_time() < end:\n"
           "    pass\n"
           "time.sleep(60)\n")
PARENT = ("import subprocess, sys, time\n"
          f"subprocess.Popen([sys.executable, '-c', {SPINNER!r}])\n"
          "time.sleep(60)\n")


def test_the_cpu_time_of_a_child_process_is_counted() -> None:
    """A parent that only sleeps and its child that spins for 0.8 s of CPU: the tree holds
    both processes, with the child's seconds (at least 0.6: the kernel counts a process's
    time in clock ticks it samples, which fell short of a 0.6-s spin by a tick under load)."""
    parent = subprocess.Popen([sys.executable, "-c", PARENT])
    used: dict[int, float] = {}
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            used = tree_cpu_seconds(parent.pid)
            if len(used) == 2 and max(used.values()) >= 0.6:
                break
            time.sleep(0.1)
        assert len(used) == 2 and parent.pid in used
        child = next(pid for pid in used if pid != parent.pid)
        assert 0.6 <= used[child] < 5
        assert used[parent.pid] < used[child]
    finally:
        for pid in used:
            os.kill(pid, 9)
        parent.wait()


def test_a_process_that_is_gone_has_no_entry() -> None:
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()
    assert tree_cpu_seconds(finished.pid) == {}
    assert os.getpid() in tree_cpu_seconds(os.getpid())
