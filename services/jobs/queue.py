"""The Celery application and its task names, shared by the senders (the job launcher) and the
workers that consume them; built from the settings when either starts."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

from celery import Celery

from lookalike.services.config import Settings

INGEST_BATCH = "lookalike.ingest_batch"


@lru_cache
def celery_app(broker_url: str, visibility_timeout_s: int, queue: str) -> Celery:
    """A Celery app on `broker_url`: late acks, requeue when a worker dies, one task prefetched
    per process, and unacked tasks of a dead worker handed out again after the timeout."""
    app = Celery("lookalike", broker=broker_url)
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        broker_connection_retry_on_startup=True,
        broker_transport_options=_transport_options(visibility_timeout_s),
        worker_hijack_root_logger=False,
        task_default_queue=queue,
    )
    return app


def _transport_options(visibility_timeout_s: int) -> dict[str, int]:
    """Redis: a dead worker's batch becomes visible after the timeout, and the sweep that
    hands it out runs a few times per timeout (at most every 10 s). kombu's default sweep
    scans only every 10th tick of 10 s, so a batch waited up to 100 s past its timeout."""
    return {"visibility_timeout": visibility_timeout_s,
            "unacked_restore_interval": max(1, min(10, visibility_timeout_s // 3)),
            "unacked_restore_throttle": 1}


def app_for(settings: Settings) -> Celery:
    if not settings.broker_url:
        raise ValueError("LOOKALIKE_BROKER_URL is not set; jobs run in-process without it")
    return celery_app(settings.broker_url, settings.job_visibility_timeout_s,
                      settings.job_queue)


def send_batches(settings: Settings, job_id: int, batches: Sequence[int]) -> None:
    """One task per batch, so that any free worker takes the next one."""
    app = app_for(settings)
    for batch in batches:
        app.send_task(INGEST_BATCH, args=[job_id, batch])
