"""Whether the job broker answers: one bounded connection attempt, for the health check."""

from __future__ import annotations

from kombu import Connection
from kombu.exceptions import OperationalError

CHECK_TIMEOUT_S = 2.0


def broker_problem(url: str, *, timeout_s: float = CHECK_TIMEOUT_S) -> str | None:
    """None when the broker at `url` accepts a connection within `timeout_s`, else why not
    (a single attempt, never the retry loop that a sender or a worker would go through)."""
    options = {"socket_timeout": timeout_s, "socket_connect_timeout": timeout_s}
    try:
        with Connection(url, connect_timeout=timeout_s, transport_options=options) as connection:
            connection.ensure_connection(max_retries=1, interval_start=0, interval_step=0,
                                         timeout=timeout_s)
    except (OperationalError, OSError) as exc:
        return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return None
