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


def tree_cpu_seconds(pid: int) -> dict[int, float]:
    """CPU seconds (user + system) used so far by a process and by each of its descendants,
    by pid, read from /proc (Linux): what a benchmark charges the server it started. A
    process that ends meanwhile is left out."""
    clock_ticks = os.sysconf("SC_CLK_TCK")
    used: dict[int, float] = {}
    waiting = [pid]
    while waiting:
        current = waiting.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rpartition(")")[2].split()
            tasks = list(Path(f"/proc/{current}/task").iterdir())
            children = [int(child) for task in tasks
                        for child in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
        used[current] = (int(fields[11]) + int(fields[12])) / clock_ticks  # utime, stime
        waiting += children
    return used
