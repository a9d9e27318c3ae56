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


def test_many_requests_at_random_moments_each_get_their_own_vector(
        embedder: Embedder, pixels: list[torch.Tensor]) -> None:
    """48 requests from 16 threads, each decoding for a random while, calls of up to 3 and
    a short window: none is lost or kept waiting, each gets its own image's vector, and
    the calls are shared (fewer than one per request)."""
    batcher = QueryBatcher(embedder, max_batch=3, max_wait_s=0.002)
    alone = [embedder.embed_tensors(image.unsqueeze(0)) for image in pixels]
    delays = np.random.default_rng(3).uniform(0, 0.01, size=48)

    answers: dict[int, np.ndarray] = {}
    requests = iter(range(len(delays)))
    taking = threading.Lock()

    def client() -> None:
        while True:
            with taking:
                n = next(requests, None)
            if n is None:
                return
            with batcher.ticket() as ticket:
                time.sleep(delays[n])
                answers[n] = ticket.embed(pixels[n % len(pixels)])

    # daemon threads: a request the batcher never wakes fails the test instead of hanging it
    clients = [threading.Thread(target=client, daemon=True) for _ in range(16)]
    for thread in clients:
        thread.start()
    for thread in clients:
        thread.join(LONG_WAIT_S)
    assert sorted(answers) == list(range(len(delays)))
    for n, vector in answers.items():
        np.testing.assert_allclose(vector, alone[n % len(pixels)], atol=1e-5)
    assert len(delays) / 3 <= batcher.calls < len(delays)


def test_every_request_of_a_failing_call_gets_the_models_error(
        embedder: Embedder, pixels: list[torch.Tensor]) -> None:
    """Four requests share a call the embedder refuses (float pixels, not uint8): each sees
    the error, and the next request still gets a call of its own and its vector (the model
    is not left marked busy)."""
    batcher = QueryBatcher(embedder, max_batch=8, max_wait_s=LONG_WAIT_S)
    all_decoding = threading.Barrier(4)

    def request(image: torch.Tensor) -> str:
        with batcher.ticket() as ticket:
            all_decoding.wait()
            try:
                ticket.embed(image.float())
            except ValueError as error:
                return str(error)
        return "no error"

    with ThreadPoolExecutor(4) as pool:
        errors = list(pool.map(request, pixels[:4]))
    assert errors == ["expected a (N,3,H,W) uint8 batch, got (4, 3, 224, 224) torch.float32"] * 4
    with batcher.ticket() as ticket:
        vector = ticket.embed(pixels[0])
    np.testing.assert_allclose(vector, embedder.embed_tensors(pixels[0].unsqueeze(0)), atol=1e-5)
    assert batcher.calls == 2
