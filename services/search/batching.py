"""Concurrent query images embedded together: one model call for up to `max_batch` images.

Each request decodes its own image in its own thread (decoding stays parallel), then hands
the pixels to the batcher. A request that finds the model free runs it on up to
`max_batch` queued images, so batches form by themselves while the model is busy. A request
waits for others only while they are still decoding, and at most `max_wait_s` after the
oldest queued image: a lone request goes straight to the model.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch

from lookalike.retrieval.embedding.embedder import Embedder


@dataclass(eq=False)
class _Query:
    """One queued image and, once embedded, its (1, D) vector or the model's error. Its
    thread sleeps on `woken`, set when the query is done or may have to lead a model call."""

    pixels: torch.Tensor
    queued_at: float = field(default_factory=time.monotonic)
    vector: np.ndarray | None = None
    error: BaseException | None = None
    done: bool = False
    woken: threading.Event = field(default_factory=threading.Event)


@dataclass(eq=False)
class Ticket:
    """A request that is decoding its image and will embed it through the batcher."""

    batcher: QueryBatcher
    submitted: bool = False

    def embed(self, pixels: torch.Tensor) -> np.ndarray:
        """The (1, D) vector of (3,S,S) uint8 pixels, from a model call shared with the
        requests queued meanwhile."""
        return self.batcher.embed(self, pixels)


class QueryBatcher:
    """Gathers the query images of concurrent requests into model calls of one embedder.

    Each waiting thread sleeps on an event of its own and is woken only when its query is
    done or when it heads the queue of a free model: with one condition shared by all, every
    submission and every finished call woke every waiting request of a busy server, which
    then took the GIL in turn only to sleep again."""

    def __init__(self, embedder: Embedder, *, max_batch: int, max_wait_s: float) -> None:
        self.embedder = embedder
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self._lock = threading.Lock()
        self._queue: list[_Query] = []
        self._decoding = 0
        self._busy = False
        self.calls = 0

    def warm(self, most: int) -> None:
        """Run the model on blank batches of 1 to `most` images (up to max_batch, and up to
        the embedder's call size: larger batches are cut into calls of that size) now, so
        the first concurrent queries find each call's shape compiled (an OpenVINO engine
        compiles one per input shape at its first call, holding up the process's other
        model calls meanwhile)."""
        side = self.embedder.input_size
        largest = min(most, self.max_batch, self.embedder.options.forward_batch)
        for size in range(1, largest + 1):
            self.embedder.embed_tensors(torch.zeros((size, 3, side, side), dtype=torch.uint8))

    @contextmanager
    def ticket(self) -> Iterator[Ticket]:
        """Announce a query image on its way (being decoded): batches wait for it a little."""
        ticket = Ticket(self)
        with self._lock:
            self._decoding += 1
        try:
            yield ticket
        finally:
            if not ticket.submitted:
                with self._lock:
                    self._decoding -= 1
                    self._wake_head()

    def embed(self, ticket: Ticket, pixels: torch.Tensor) -> np.ndarray:
        """Queue the pixels, run or wait for the model call that takes them, return the vector."""
        query = _Query(pixels)
        with self._lock:
            ticket.submitted = True
            self._decoding -= 1
            self._queue.append(query)
        while True:
            with self._lock:
                if query.done:
                    break
                wait = self._wait_before_leading(query)
                batch = self._take() if wait == 0.0 else None
            if batch is not None:
                self._run(batch)
            else:
                query.woken.wait(wait)
                query.woken.clear()
        if query.error is not None:
            raise query.error
        assert query.vector is not None
        return query.vector

    def _wait_before_leading(self, query: _Query) -> float | None:
        """0 when this thread should run the model now; else how long to wait (None: until
        woken). Only the head of the queue waits out the window; any thread that finds a
        free model and a full batch (or nothing left decoding) leads. Lock held."""
        if self._busy or not self._queue:
            return None
        if len(self._queue) >= self.max_batch or self._decoding == 0:
            return 0.0
        if query is not self._queue[0]:
            return None
        left = query.queued_at + self.max_wait_s - time.monotonic()
        return 0.0 if left <= 0 else left

    def _take(self) -> list[_Query]:
        """The next model call's queries, the model marked busy. Lock held."""
        batch, self._queue = self._queue[:self.max_batch], self._queue[self.max_batch:]
        self._busy = True
        return batch

    def _wake_head(self) -> None:
        """Wake the query heading the queue, to lead or to wait out the window. Lock held."""
        if self._queue and not self._busy:
            self._queue[0].woken.set()

    def _run(self, batch: list[_Query]) -> None:
        """Run the model on the batch (lock released); every query of it is done afterwards,
        with its vector or the error, and its thread woken, as is the next head."""
        vectors: np.ndarray | None = None
        error: BaseException | None = None
        try:
            vectors = self.embedder.embed_tensors(torch.stack([q.pixels for q in batch]))
        except Exception as failure:  # every request of the batch gets the model's error
            error = failure
        finally:
            if vectors is None and error is None:
                error = RuntimeError("the model call was interrupted; send the search again")
            with self._lock:
                self.calls += 1
                self._busy = False
                for row, query in enumerate(batch):
                    query.vector = None if vectors is None else vectors[row:row + 1]
                    query.error = error
                    query.done = True
                    query.woken.set()
                self._wake_head()
