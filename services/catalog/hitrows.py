"""What search answers show of each image, read once per catalog state.

Every search answer joins its hits with the catalog (`embedded_hit_rows`). In a server that
query ran after the model's forward pass and FAISS's scan of every vector had emptied the
CPU's caches, and took about 0.5 ms of a search by upload whose decode + forward takes 5.6
(a line profile of `search_vector` on the Intel AMX host; 0.07 ms warm, one query after
another). Rows read once are kept while the catalog clock (clock.py) says nothing was
committed since, which is the guarantee the replica's catch-up already relies on: any
commit, from any process, empties the store before the next answer reads it. Where the
catalog gives no clock (PostgreSQL) every answer reads its rows afresh.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from sqlalchemy import RowMapping
from sqlalchemy.orm import Session

from lookalike.services.catalog.images import embedded_hit_rows

HIT_ROWS_KEPT = 20_000  # rows held at most; the store starts over when more are read


class KeptHitRows:
    """`embedded_hit_rows` answered from memory for ids already read at the same clock token
    (absent ids too: a hit that is not embedded stays out of answers)."""

    def __init__(self, *, most: int = HIT_ROWS_KEPT) -> None:
        self._most = most
        self._token: int | None = None
        self._rows: dict[int, RowMapping | None] = {}
        self._lock = threading.Lock()

    def rows(self, session: Session, ids: Sequence[int], *,
             token: int | None) -> dict[int, RowMapping]:
        """The rows of the embedded images among `ids`, keyed by id, for a session opened at
        clock `token` (None: no clock, always read through `session`)."""
        if token is None:
            return embedded_hit_rows(session=session, ids=ids)
        with self._lock:
            if token != self._token:
                self._token, self._rows = token, {}
            known = {i: self._rows[i] for i in ids if i in self._rows}
        missing = [i for i in ids if i not in known]
        if missing:
            read = embedded_hit_rows(session=session, ids=missing)
            fetched = {i: read.get(i) for i in missing}
            known.update(fetched)
            with self._lock:
                if token == self._token:
                    if len(self._rows) + len(fetched) > self._most:
                        self._rows = {}
                    self._rows.update(fetched)
        return {i: row for i, row in known.items() if row is not None}
