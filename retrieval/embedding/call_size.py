"""How many images one model call should take: measured, because the answer depends on the
engine and on the CPU's caches, not on the model alone.

Small calls keep a call's activations in the core's cache, large ones spread a call's fixed
costs over more images; which wins moved with the engine and the CPU in `lookalike bench
forward` runs (README, "Speed"): on an AMX Xeon the TorchScript bf16 graph ran calls of 4
faster than calls of 1; on a Zen 5 EPYC (2 MB of L2 a core) the mixed OpenVINO engine ran
calls of 1 a tenth faster than calls of 4, while the TorchScript graph there ran calls of 1
a third slower than calls of 4 or 8.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from lookalike.retrieval.embedding.embedder import Embedder

CALL_SIZES = (1, 2, 4, 8)


@dataclass(frozen=True)
class CallRates:
    """Images/s of one embedder in model calls of each size."""

    images_per_s: dict[int, float]

    @property
    def fastest(self) -> int:
        """The call size with the most images/s."""
        return max(self.images_per_s, key=self.images_per_s.__getitem__)


def measure_call_sizes(embedder: Embedder, *, sizes: tuple[int, ...] = CALL_SIZES,
                       seconds: float = 0.3, rounds: int = 3, seed: int = 0) -> CallRates:
    """Images/s of `embedder` on seeded random pixels at its input size, in one model call of
    each of `sizes` images at a time: two warm-up calls each (an OpenVINO trunk compiles a
    model for a new shape at its first call), then the best of `rounds` rounds of `seconds`
    each, the sizes taking their turns within every round so that the machine's pace
    drifting meanwhile reaches each alike. The embedder must take each size in one call."""
    if embedder.options.forward_batch < max(sizes):
        raise ValueError(f"the embedder cuts batches into calls of "
                         f"{embedder.options.forward_batch}, fewer than {max(sizes)}")
    side = embedder.input_size
    generator = torch.Generator().manual_seed(seed)
    batches = {size: torch.randint(0, 256, (size, 3, side, side), dtype=torch.uint8,
                                   generator=generator) for size in sizes}
    for batch in batches.values():
        for _ in range(2):
            embedder.embed_tensors(batch)
    best = dict.fromkeys(sizes, 0.0)
    for _ in range(rounds):
        for size, batch in batches.items():
            images, started = 0, time.perf_counter()
            while (elapsed := time.perf_counter() - started) < seconds:
                embedder.embed_tensors(batch)
                images += size
            best[size] = max(best[size], images / elapsed)
    return CallRates(best)
