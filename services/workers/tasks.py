"""Celery tasks and the per-process runtime: each worker process loads its model once.

Workers use Celery's thread pool: torch releases the GIL while it computes, the threads share
one model, and the decode processes of the DataLoader may be started (a prefork pool's
daemonic children may not have children of their own)."""

from __future__ import annotations

import logging
import threading

from celery import Celery, Task
from celery.signals import worker_init, worker_shutdown

from lookalike.services.config import Settings
from lookalike.services.jobs.queue import INGEST_BATCH, app_for
from lookalike.services.jobs.runner import fail_batch, run_batch
from lookalike.services.runtime import Runtime
from lookalike.services.setup import open_runtime

log = logging.getLogger(__name__)

BACKOFF_S = 2.0


class _Process:
    """The runtime of this worker process, opened as the worker starts and shared by its
    task threads."""

    settings: Settings | None = None
    runtime: Runtime | None = None
    lock = threading.Lock()

    @classmethod
    def get(cls) -> Runtime:
        with cls.lock:
            if cls.runtime is None:
                assert cls.settings is not None, "worker app not built"
                cls.runtime = open_runtime(cls.settings)
            return cls.runtime


@worker_init.connect
def _open_runtime(**_: object) -> None:
    """Open the catalog and the index before the worker takes a task (and says it is ready),
    so that its first batch starts at once rather than after a catalog connection and a
    schema check: two workers given two batches together then run them together. Should it
    fail, Celery logs the error and the first task tries again (and fails its batch, saying
    why, if it still cannot)."""
    _Process.get()


@worker_shutdown.connect
def _close_runtime(**_: object) -> None:
    if _Process.runtime is not None:
        _Process.runtime.close()


def build_worker_app(settings: Settings) -> Celery:
    """The Celery app with lookalike's tasks registered, for `lookalike worker`."""
    _Process.settings = settings
    app = app_for(settings)
    app.task(name=INGEST_BATCH, bind=True, max_retries=settings.job_max_retries)(ingest_batch)
    return app


def ingest_batch(task: Task, job_id: int, batch: int) -> None:
    """Run one batch; retried with exponential back-off, then recorded failed with its error."""
    runtime = _Process.get()
    try:
        run_batch(runtime, job_id, batch)
    except Exception as exc:
        if task.request.retries < (task.max_retries or 0):
            delay = BACKOFF_S * 2 ** task.request.retries
            log.warning("job %d batch %d failed (%s); retry in %.0f s", job_id, batch, exc, delay)
            raise task.retry(exc=exc, countdown=delay) from exc
        log.exception("job %d batch %d failed after %d retries", job_id, batch,
                      task.request.retries)
        fail_batch(runtime, job_id, batch, f"{type(exc).__name__}: {exc}")
