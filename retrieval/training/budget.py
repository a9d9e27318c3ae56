"""Softmax training under a fixed budget of seconds or epochs: the same deal for every network.

Networks of very different cost are compared fairly when each gets the same wall time (or
the same number of epochs). The learning rate follows a cosine over the budget's progress
(time used / seconds, or steps / total steps), so every network ends annealed whatever its
speed. Meant for comparisons (`lookalike bench zoo`); resumable jobs use `trainer.fit`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from lookalike.retrieval.errors import InvalidTrainingConfig
from lookalike.retrieval.training.losses import softmax_loss
from lookalike.retrieval.training.sampling import ShuffledBatches

Batch = Callable[[list[int]], tuple[Tensor, Tensor]]


@dataclass(frozen=True)
class Budget:
    """Train for `seconds` of wall time, or for `epochs` passes (exactly one of them)."""

    seconds: float | None = None
    epochs: int | None = None
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-4
    seed: int = 0

    def __post_init__(self) -> None:
        if (self.seconds is None) == (self.epochs is None):
            raise InvalidTrainingConfig("give a budget of seconds or of epochs, not both")
        if (self.seconds or 1) <= 0 or (self.epochs or 1) < 1 or self.batch_size < 2:
            raise InvalidTrainingConfig(
                f"need seconds > 0, epochs >= 1 and batch_size >= 2; got {self.seconds}, "
                f"{self.epochs}, {self.batch_size}")


@dataclass
class BudgetRun:
    """What a budgeted run did on a training set of `train_items`: steps, images seen,
    seconds, and the loss of every step."""

    train_items: int
    steps: int = 0
    images: int = 0
    seconds: float = 0.0
    losses: list[float] = field(default_factory=list)

    @property
    def epochs(self) -> float:
        """Passes over the training set, fractional."""
        return self.images / max(1, self.train_items)


def _progress(budget: Budget, started: float, step: int, total_steps: int) -> float:
    """Fraction of the budget used, 0..1."""
    if budget.seconds is not None:
        return min(1.0, (time.perf_counter() - started) / budget.seconds)
    return min(1.0, step / total_steps)


def train_on_budget(model: nn.Module, batch: Batch, *, count: int, budget: Budget) -> BudgetRun:
    """Train `model` (an EmbeddingNet with a classifier) with the softmax loss on `count` items,
    `batch(indices)` giving (uint8 pixels, int64 labels); AdamW with a cosine learning rate
    over the budget. Returns the run's record; the model is left in eval mode."""
    batches = ShuffledBatches(count, batch_size=budget.batch_size, seed=budget.seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=budget.lr,
                                  weight_decay=budget.weight_decay)
    total_steps = (budget.epochs or 1) * len(batches)
    run = BudgetRun(train_items=count)
    started = time.perf_counter()
    model.train()
    epoch = 0
    while _progress(budget, started, run.steps, total_steps) < 1.0:
        batches.set_epoch(epoch)
        for indices in batches:
            fraction = _progress(budget, started, run.steps, total_steps)
            if fraction >= 1.0:
                break
            for group in optimizer.param_groups:
                group["lr"] = budget.lr * 0.5 * (1.0 + math.cos(math.pi * fraction))
            inputs, labels = batch(indices)
            loss = softmax_loss(model.logits(model(inputs)), labels)  # type: ignore[operator]
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            run.steps += 1
            run.images += len(indices)
            run.losses.append(float(loss.detach()))
        epoch += 1
    run.seconds = time.perf_counter() - started
    model.eval()
    return run
