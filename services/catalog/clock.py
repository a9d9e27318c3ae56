"""Has anything been committed to the catalog since this process last looked?

Answering that cheaply lets a process reuse what it read for earlier requests (the default
space, whether keys are required, a key's identity, whether videos exist) and skip a
replica's catch-up query, instead of asking the catalog on every request. SQLite keeps a
counter that any commit, from any connection or process, moves (`PRAGMA data_version`, read
on a connection of its own, in microseconds and without a transaction). PostgreSQL has no
such counter short of a round trip, so there every request reads afresh (`now` is None).
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from sqlalchemy import make_url


class CatalogClock:
    """A token that stays equal while nothing is committed to the catalog."""

    def __init__(self, catalog_url: str) -> None:
        parsed = make_url(catalog_url)
        local = parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "",
                                                                                  ":memory:")
        self._path = parsed.database if local else None
        self._connection: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    def now(self) -> int | None:
        """The current token, or None where the catalog gives no cheap signal (nothing read
        before may then be reused)."""
        if self._path is None:
            return None
        with self._lock:
            if self._connection is None:
                self._connection = sqlite3.connect(
                    f"{Path(self._path).resolve().as_uri()}?mode=ro", uri=True,
                    check_same_thread=False, isolation_level=None)
            return int(self._connection.execute("PRAGMA data_version").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None
