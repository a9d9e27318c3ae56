"""The helper processes of a benchmark (API servers, workers, ingesters): their environment
on the same catalog, a broker queue of the run's own and its removal, their logs' ends."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from lookalike.services.config import Settings
from lookalike.services.errors import BenchFailed
from lookalike.services.jobs.broker import broker_problem


def child_env(settings: Settings, extra: dict[str, str]) -> dict[str, str]:
    """The environment of a helper process on the same catalog: this one's, plus `extra`."""
    env = {**os.environ, "LOOKALIKE_HOME": str(settings.home), **extra}
    if settings.database_url:
        env["LOOKALIKE_DATABASE_URL"] = settings.database_url
    return env


def queue_env(settings: Settings) -> dict[str, str]:
    """The variables that send jobs to a queue of this run's own on the configured broker (a
    stray worker elsewhere never takes them); empty without a broker."""
    if not settings.broker_url:
        return {}
    problem = broker_problem(settings.broker_url)
    if problem is not None:
        raise BenchFailed(f"the broker {settings.broker_url} does not answer ({problem}); start "
                          "Redis there, or leave out --broker and LOOKALIKE_BROKER_URL to "
                          "ingest with a `lookalike ingest` process")
    return {"LOOKALIKE_BROKER_URL": settings.broker_url,
            "LOOKALIKE_JOB_QUEUE": f"lookalike-bench-{secrets.token_hex(4)}"}


def tail(log_path: Path, chars: int = 3000) -> str:
    """The end of a helper process's log, for an error message."""
    return log_path.read_text(errors="replace")[-chars:]


def drop_queue(settings: Settings, queue: str) -> None:
    """Delete this run's queue from the broker, with any tasks left on it: no worker will
    ever consume it again."""
    from lookalike.services.jobs.queue import app_for  # noqa: PLC0415 - celery

    app = app_for(settings.model_copy(update={"job_queue": queue}))
    with app.connection_for_write() as connection:
        bound = app.amqp.queues[queue].bind(connection.default_channel)
        bound.declare()
        bound.delete()
