"""Where a job's batches run: chosen once at start-up and handed to the runtime, so the job
runner never needs to know about Celery or threads."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from lookalike.services.config import Settings
from lookalike.services.jobs.queue import send_batches

if TYPE_CHECKING:
    from lookalike.services.runtime import Runtime


class Launcher(Protocol):
    """Starts batches of a recorded job; `remote` when they run in other processes."""

    remote: bool

    def send(self, runtime: Runtime, job_id: int, batches: Sequence[int]) -> None: ...


class ThreadLauncher:
    """Runs the batches in a daemon thread of this process: the embedded default."""

    remote = False

    def send(self, runtime: Runtime, job_id: int, batches: Sequence[int]) -> None:
        from lookalike.services.jobs.runner import run_batches  # the model stack, when used

        threading.Thread(target=run_batches, args=(runtime, job_id, list(batches)),
                         name=f"job-{job_id}", daemon=True).start()


class CeleryLauncher:
    """Sends one task per batch to the broker; any free worker takes the next one."""

    remote = True

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    def send(self, runtime: Runtime, job_id: int, batches: Sequence[int]) -> None:
        send_batches(self._settings, job_id, batches)


def launcher_for(settings: Settings) -> Launcher:
    """Celery workers when a broker is configured, else threads of this process."""
    return CeleryLauncher(settings) if settings.broker_url else ThreadLauncher()
