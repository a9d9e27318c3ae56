"""Class-balanced batches: P classes x K images each, so every anchor has positives in its batch."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
from torch.utils.data import Sampler

from lookalike.retrieval.errors import InvalidTrainingConfig


class ClassBalancedBatches(Sampler[list[int]]):
    """Batches of `classes_per_batch` distinct classes with `per_class` indices each.

    An epoch has len(labels) // (classes_per_batch * per_class) batches. Each class's indices
    are drawn without replacement from a shuffled pool that is refilled when it runs out (so a
    class smaller than `per_class` repeats items). The batches depend only on (seed, epoch):
    a resumed run sees the same epoch as an uninterrupted one.
    """

    def __init__(
        self, labels: Sequence[int], *, classes_per_batch: int, per_class: int, seed: int
    ) -> None:
        super().__init__()
        self.labels = np.asarray(labels, dtype=np.int64)
        self.classes = np.unique(self.labels)
        if classes_per_batch < 2 or per_class < 1:
            raise InvalidTrainingConfig(
                f"need classes_per_batch >= 2 and per_class >= 1, got {classes_per_batch} "
                f"and {per_class}"
            )
        if len(self.classes) < classes_per_batch:
            raise InvalidTrainingConfig(
                f"the labels have {len(self.classes)} classes, fewer than classes_per_batch="
                f"{classes_per_batch}; lower it or add labelled images of more classes"
            )
        self.classes_per_batch = classes_per_batch
        self.per_class = per_class
        self.seed = seed
        self.epoch = 0
        self.members = [np.flatnonzero(self.labels == label) for label in self.classes]

    def set_epoch(self, epoch: int) -> None:
        """Choose which epoch's batches the next iteration gives."""
        self.epoch = epoch

    def __len__(self) -> int:
        return max(1, len(self.labels) // (self.classes_per_batch * self.per_class))

    def __iter__(self) -> Iterator[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        pools: list[list[int]] = [[] for _ in self.members]
        for _ in range(len(self)):
            chosen = rng.choice(len(self.classes), self.classes_per_batch, replace=False)
            yield [index for slot in chosen for index in self._take(pools, int(slot), rng)]

    def _take(self, pools: list[list[int]], slot: int, rng: np.random.Generator) -> list[int]:
        """`per_class` indices of class `slot`, refilling its shuffled pool when it runs out."""
        taken: list[int] = []
        while len(taken) < self.per_class:
            if not pools[slot]:
                pools[slot] = rng.permutation(self.members[slot]).tolist()
            taken.append(pools[slot].pop())
        return taken


class ShuffledBatches(Sampler[list[int]]):
    """Plain shuffled batches (for the softmax loss); the order depends only on (seed, epoch)."""

    def __init__(self, count: int, *, batch_size: int, seed: int) -> None:
        super().__init__()
        if batch_size < 1 or count < 1:
            raise InvalidTrainingConfig(
                f"need at least one item and batch_size >= 1, got {count} and {batch_size}"
            )
        self.count = count
        self.batch_size = min(batch_size, count)
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Choose which epoch's order the next iteration gives."""
        self.epoch = epoch

    def __len__(self) -> int:
        return self.count // self.batch_size

    def __iter__(self) -> Iterator[list[int]]:
        order = np.random.default_rng([self.seed, self.epoch]).permutation(self.count).tolist()
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            yield order[start : start + self.batch_size]
