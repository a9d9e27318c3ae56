"""Concurrent query images embedded together: one model call for up to `max_batch` images.

Each request decodes its own image in its own thread (decoding stays parallel), then hands
the pixels to the batcher. Whichever waiting request finds the model free runs it on
everything queued, so batches form by themselves while the model is busy. A request
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
    """One queued image and, once embedded, its (1, D) vector or the model's error."""

    pixels: torch.Tensor
    queued_at: float = field(default_factory=time.monotonic)
    vector: np.ndarray | None = None
    error: BaseException | None = None
    done: bool = False


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
    """Gathers the query images of concurrent requests into model calls of one embedder."""

    def __init__(self, embedder: Embedder, *, max_batch: int, max_wait_s: float) -> None:
        self.embedder = embedder
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self._changed = threading.Condition()
        self._queue: list[_Query] = []
        self._decoding = 0
        self._busy = False
        self.calls = 0

    def warm(self, most: int) -> None:
        """Run the model on blank batches of 1 to `most` images (up to max_batch) now, so the
        first concurrent queries find each batch size's model compiled (an OpenVINO engine
        compiles one per input shape at its first call, holding up the process's other
        model calls meanwhile)."""
        side = self.embedder.input_size
        for size in range(1, min(most, self.max_batch) + 1):
            self.embedder.embed_tensors(torch.zeros((size, 3, side, side), dtype=torch.uint8))

    @contextmanager
    def ticket(self) -> Iterator[Ticket]:
        """Announce a query image on its way (being decoded): batches wait for it a little."""
        ticket = Ticket(self)
        with self._changed:
            self._decoding += 1
        try:
            yield ticket
        finally:
            if not ticket.submitted:
                with self._changed:
                    self._decoding -= 1
                    self._changed.notify_all()

    def embed(self, ticket: Ticket, pixels: torch.Tensor) -> np.ndarray:
        """Queue the pixels, run or wait for the model call that takes them, return the vector."""
        query = _Query(pixels)
        with self._changed:
            ticket.submitted = True
            self._decoding -= 1
            self._queue.append(query)
            self._changed.notify_all()
            while not query.done:
                wait = self._wait_before_leading()
                if wait == 0.0:
                    self._lead()
                else:
                    self._changed.wait(wait)
        if query.error is not None:
            raise query.error
        assert query.vector is not None
        return query.vector

    def _wait_before_leading(self) -> float | None:
        """0 when this thread should run the model now; else how long to wait (None: until
        told). Called with the lock held."""
        if self._busy or not self._queue:
            return None
        if len(self._queue) >= self.max_batch or self._decoding == 0:
            return 0.0
        left = self._queue[0].queued_at + self.max_wait_s - time.monotonic()
        return 0.0 if left <= 0 else left

    def _lead(self) -> None:
        """Take up to max_batch queued images and run the model on them, the lock released
        meanwhile; every query taken is done afterwards, with its vector or the error."""
        batch, self._queue = self._queue[:self.max_batch], self._queue[self.max_batch:]
        self._busy = True
        self._changed.release()
        try:
            vectors = self.embedder.embed_tensors(torch.stack([q.pixels for q in batch]))
            for row, query in enumerate(batch):
                query.vector = vectors[row:row + 1]
        except Exception as error:  # every request of the batch gets the model's error
            for query in batch:
                query.error = error
        finally:
            self._changed.acquire()
            self.calls += 1
            self._busy = False
            for query in batch:
                query.done = True
            self._changed.notify_all()
