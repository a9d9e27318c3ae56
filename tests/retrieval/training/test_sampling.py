"""Class-balanced and shuffled batches: balance, coverage and determinism by (seed, epoch)."""

from __future__ import annotations

from collections import Counter

import pytest

from lookalike.retrieval.errors import InvalidTrainingConfig
from lookalike.retrieval.training.sampling import ClassBalancedBatches, ShuffledBatches

LABELS = [index % 7 for index in range(140)]  # 7 classes of 20


def _epoch(sampler: ClassBalancedBatches | ShuffledBatches, epoch: int) -> list[list[int]]:
    sampler.set_epoch(epoch)
    return list(sampler)


def test_every_batch_has_distinct_classes_with_per_class_images_each() -> None:
    sampler = ClassBalancedBatches(LABELS, classes_per_batch=4, per_class=5, seed=1)
    batches = _epoch(sampler, 0)
    assert len(batches) == len(sampler) == 140 // 20
    for batch in batches:
        counts = Counter(LABELS[index] for index in batch)
        assert len(counts) == 4 and set(counts.values()) == {5}


def test_batches_depend_only_on_seed_and_epoch() -> None:
    first = ClassBalancedBatches(LABELS, classes_per_batch=4, per_class=5, seed=1)
    second = ClassBalancedBatches(LABELS, classes_per_batch=4, per_class=5, seed=1)
    _epoch(first, 0)  # iterating epoch 0 first must not change epoch 3
    assert _epoch(first, 3) == _epoch(second, 3)
    assert _epoch(first, 3) != _epoch(first, 4)
    other_seed = ClassBalancedBatches(LABELS, classes_per_batch=4, per_class=5, seed=2)
    assert _epoch(other_seed, 3) != _epoch(first, 3)


def test_a_class_smaller_than_per_class_repeats_its_images() -> None:
    labels = [0, 0, 1, 1, 1, 1, 1, 1]
    batches = _epoch(ClassBalancedBatches(labels, classes_per_batch=2, per_class=3, seed=0), 0)
    small = [index for batch in batches for index in batch if labels[index] == 0]
    assert len(small) == 3 * len(batches) and set(small) == {0, 1}


def test_fewer_classes_than_a_batch_needs_is_refused() -> None:
    with pytest.raises(InvalidTrainingConfig, match="7 classes, fewer than classes_per_batch=8"):
        ClassBalancedBatches(LABELS, classes_per_batch=8, per_class=2, seed=0)


def test_shuffled_batches_cover_each_item_once_per_epoch() -> None:
    sampler = ShuffledBatches(100, batch_size=32, seed=5)
    batches = _epoch(sampler, 0)
    flat = [index for batch in batches for index in batch]
    assert [len(batch) for batch in batches] == [32, 32, 32]
    assert len(set(flat)) == 96
    assert _epoch(ShuffledBatches(100, batch_size=32, seed=5), 0) == batches
    assert _epoch(sampler, 1) != batches
