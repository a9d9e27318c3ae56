"""Index choice by target recall: candidates by size and budget, tuning, measured figures."""

from __future__ import annotations

import numpy as np
import pytest

from lookalike.retrieval.errors import IndexShapeError
from lookalike.retrieval.evaluation.metrics import ann_recall_at_k, exact_search
from lookalike.retrieval.index.choice import (
    RERANK_FACTOR,
    candidates,
    choose_index,
    clustered_vectors,
    ivf_lists,
)


def test_small_collections_start_with_flat_and_large_ones_with_ivf() -> None:
    assert candidates(10_000, 512, 4 * 2**30)[0].factory == "Flat"
    large = [c.factory for c in candidates(1_000_000, 512, 4 * 2**30)]
    assert large[:2] == ["IVF1024,PQ128x4fs,RFlat", "IVF1024,Flat"]
    assert "HNSW32" not in large
    assert large[-1] == "Flat"
    odd = [c.factory for c in candidates(1_000_000, 9, 4 * 2**30)]  # no 4-bit codes for 9 dims
    assert odd[0] == "IVF1024,Flat"


def test_the_memory_budget_leaves_only_compressed_indexes() -> None:
    budget = 300 * 1_000_000
    assert [c.factory for c in candidates(1_000_000, 512, budget)] == ["OPQ256,IVF1024,PQ256"]
    assert candidates(1_000_000, 512, 10_000_000) == []


def test_ivf_lists_are_a_power_of_two_near_the_square_root() -> None:
    assert (ivf_lists(1_000_000), ivf_lists(100_000), ivf_lists(10)) == (1024, 256, 16)


def test_chosen_ivf_index_reaches_the_target_recall_on_held_out_queries() -> None:
    data = clustered_vectors(60_200, 32, clusters=200, seed=1)
    base, queries = data[:60_000], data[60_000:]
    index, choice = choose_index(base, queries, target_recall=0.9)
    assert choice.factory == "IVF256,PQ8x4fs,RFlat" and choice.meets_target
    assert choice.recall >= 0.9 and "nprobe" in choice.params
    assert choice.params["k_factor"] == RERANK_FACTOR
    assert choice.tried[-1].params == choice.params
    assert all(t.recall < 0.9 for t in choice.tried[:-1])
    found = index.search(queries, 10, params=choice.params).ids
    assert ann_recall_at_k(found, exact_search(queries, base, 10)[1]) == pytest.approx(
        choice.recall)
    assert choice.qps > 0 and 32 * 4 <= choice.bytes_per_vector < 32 * 4 + 64


def test_mismatched_dimensions_are_refused() -> None:
    with pytest.raises(IndexShapeError, match="share D"):
        choose_index(np.zeros((10, 4), np.float32), np.zeros((2, 5), np.float32))
