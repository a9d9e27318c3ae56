"""Query images of concurrent requests share model calls: each gets the vector it would get
alone, a lone request never waits for the batch window, and a request whose decoding fails
does not hold the others up."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch

from lookalike.retrieval.embedding.embedder import Embedder, EmbedderOptions
from lookalike.retrieval.models.registry import (
    get_backbone,
    load_feature_extractor,
    resolve_weights,
)
from lookalike.services.sample import bundled_photos
from lookalike.services.search.batching import QueryBatcher

SPEC = get_backbone("mobilenet_v2")
LONG_WAIT_S = 60.0


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    weights = resolve_weights(SPEC, explicit=None, torch_home=Path.home() / ".cache" / "torch")
    return Embedder(load_feature_extractor(SPEC, weights=weights), spec=SPEC,
                    options=EmbedderOptions(bf16=False))


@pytest.fixture(scope="module")
def pixels(embedder: Embedder) -> list[torch.Tensor]:
    return [embedder.to_tensor(photo.image) for photo in bundled_photos()[:12]]


def test_concurrent_queries_share_calls_and_get_their_own_vectors(
        embedder: Embedder, pixels: list[torch.Tensor]) -> None:
    """12 requests decoding at once, calls of up to 8: two model calls, and every vector as
    the image alone gives it."""
    batcher = QueryBatcher(embedder, max_batch=8, max_wait_s=LONG_WAIT_S)
    all_decoding = threading.Barrier(len(pixels))

    def request(image: torch.Tensor) -> np.ndarray:
        with batcher.ticket() as ticket:
            all_decoding.wait()
            return ticket.embed(image)

    with ThreadPoolExecutor(len(pixels)) as pool:
        batched = list(pool.map(request, pixels))
    assert batcher.calls == 2
    for image, vector in zip(pixels, batched, strict=True):
        alone = embedder.embed_tensors(image.unsqueeze(0))
        assert vector.shape == (1, embedder.dim)
        np.testing.assert_allclose(vector, alone, atol=1e-5)


def test_a_lone_query_does_not_wait_for_the_window(embedder: Embedder,
                                                   pixels: list[torch.Tensor]) -> None:
    batcher = QueryBatcher(embedder, max_batch=8, max_wait_s=LONG_WAIT_S)
    started = time.monotonic()
    with batcher.ticket() as ticket:
        ticket.embed(pixels[0])
    assert time.monotonic() - started < LONG_WAIT_S / 2
    assert batcher.calls == 1


def test_a_failed_decode_does_not_hold_up_the_queue(embedder: Embedder,
                                                    pixels: list[torch.Tensor]) -> None:
    """One request announces an image and then fails to decode it: the queued one runs at
    once instead of waiting out the window."""
    batcher = QueryBatcher(embedder, max_batch=8, max_wait_s=LONG_WAIT_S)
    queued = threading.Event()

    def failing() -> None:
        with pytest.raises(ValueError), batcher.ticket():
            queued.wait()
            time.sleep(0.05)
            raise ValueError("not an image")

    with ThreadPoolExecutor(2) as pool:
        failure = pool.submit(failing)
        started = time.monotonic()
        with batcher.ticket() as ticket:
            queued.set()
            ticket.embed(pixels[1])
        failure.result()
    assert time.monotonic() - started < LONG_WAIT_S / 2
    assert batcher.calls == 1
