"""Measuring which model call size embeds the most images per second."""

from __future__ import annotations

import time

import pytest
import torch

from lookalike.retrieval.embedding.call_size import CALL_SIZES, measure_call_sizes
from lookalike.retrieval.embedding.embedder import Embedder, EmbedderOptions
from lookalike.retrieval.models.registry import (
    get_backbone,
    load_feature_extractor,
    resolve_weights,
)

MOBILENET = get_backbone("mobilenet_v2")
QUICK = {"seconds": 0.05, "rounds": 1}


class TimedTrunk(torch.nn.Module):
    """A trunk whose call of n images takes `fixed` + `squared` * n² seconds: fixed costs
    favour large calls, a cost that grows faster than the call (activations spilling out of
    the cache) favours small ones."""

    def __init__(self, *, fixed: float, squared: float) -> None:
        super().__init__()
        self.fixed, self.squared = fixed, squared
        self.level = torch.nn.Parameter(torch.ones(MOBILENET.dim, 1, 1))

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        time.sleep(self.fixed + self.squared * inputs.shape[0] ** 2)
        return self.level.expand(inputs.shape[0], -1, -1, -1)


def _embedder(trunk: torch.nn.Module, forward_batch: int = max(CALL_SIZES)) -> Embedder:
    return Embedder(trunk, spec=MOBILENET, options=EmbedderOptions(
        forward_batch=forward_batch, channels_last=False))


def test_fixed_costs_per_call_make_the_largest_call_fastest() -> None:
    rates = measure_call_sizes(_embedder(TimedTrunk(fixed=0.004, squared=0.0)), **QUICK)
    assert set(rates.images_per_s) == set(CALL_SIZES)
    assert rates.fastest == max(CALL_SIZES)
    assert rates.images_per_s[8] > 3 * rates.images_per_s[1]


def test_costs_growing_faster_than_the_call_make_the_smallest_call_fastest() -> None:
    """3 ms x n² per call: large enough against the embedder's own per-call work (about
    1.4 ms on a loaded 2-core Ice Lake host, where 0.5 ms x n² made calls of 2 fastest)."""
    rates = measure_call_sizes(_embedder(TimedTrunk(fixed=0.0, squared=0.003)), **QUICK)
    assert rates.fastest == 1
    assert rates.images_per_s[1] > 3 * rates.images_per_s[8]


def test_the_real_model_gets_a_rate_for_each_size(tmp_path_factory) -> None:
    weights = resolve_weights(MOBILENET, explicit=None,
                              torch_home=tmp_path_factory.mktemp("torch-home"))
    rates = measure_call_sizes(_embedder(load_feature_extractor(MOBILENET, weights=weights)),
                               **QUICK)
    assert all(rate > 1 for rate in rates.images_per_s.values())
    assert rates.images_per_s[rates.fastest] == max(rates.images_per_s.values())


def test_an_embedder_that_cuts_calls_smaller_than_the_sizes_is_refused() -> None:
    with pytest.raises(ValueError, match="calls of 4, fewer than 8"):
        measure_call_sizes(_embedder(TimedTrunk(fixed=0.0, squared=0.0), forward_batch=4))
