"""`lookalike bench zoo`: the textbook's networks trained from scratch on Fashion-MNIST with the
same budget, then compared on retrieval (the fashion-mnist benchmark of `lookalike evaluate`),
classification by their softmax head, size, multiply-adds and embedding speed.

Every network runs in its 32 px variant (`retrieval.models.small`; LeNet-5 is 32 px already),
trained with `training.budget` (softmax loss, AdamW, cosine over the budget, no
augmentation). The pretrained MobileNetV2 at 224 px, off the shelf and with learned whitening
(Lw, learned from the gallery's labels: the queries are the held-out test split), and raw
pixels are reference rows.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from lookalike.retrieval.embedding.embedder import Embedder, EmbedderOptions
from lookalike.retrieval.embedding.whitening import apply as apply_whitening
from lookalike.retrieval.embedding.whitening import fit_learned_whitening
from lookalike.retrieval.models.cost import multiply_adds, parameter_count
from lookalike.retrieval.models.registry import (
    get_backbone,
    load_feature_extractor,
    resolve_weights,
)
from lookalike.retrieval.training.budget import Budget, train_on_budget
from lookalike.retrieval.training.network import EmbeddingNet, build_network
from lookalike.services.evaluation.benchmarks import (
    Benchmark,
    embed_arrays,
    fashion_pixels,
    fashion_split,
    raw_pixels,
)
from lookalike.services.evaluation.run import score_benchmark
from lookalike.services.sample import fashion_mnist

log = logging.getLogger(__name__)

DEFAULT_NETWORKS = ("lenet5", "alexnet_small", "zfnet_small", "vgg16_small", "nin_small",
                    "googlenet_small", "resnet18_small", "mobilenet_v2_small")
REFERENCE = "mobilenet_v2"
CLASSES = 10
EMBED_BATCH = 256


@dataclass
class ZooRow:
    """One network's figures; accuracy is None where there is no softmax head."""

    network: str
    training: str
    input_size: int
    dim: int
    map: float
    p10: float
    accuracy: float | None
    params: int
    multiply_adds: int
    images_per_s: float
    train_seconds: float = 0.0
    epochs: float = 0.0
    final_loss: float | None = None


@dataclass
class ZooResult:
    """The table, and what produced it."""

    rows: list[ZooRow]
    queries: int
    gallery: int
    train_images: int
    seconds: float | None
    epochs: int | None
    torch_threads: int

    def to_public(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class _Data:
    """Query, gallery and training images (N,28,28) with their labels."""

    queries: np.ndarray
    query_labels: np.ndarray
    gallery: np.ndarray
    gallery_labels: np.ndarray
    train: np.ndarray
    train_labels: torch.Tensor


def _load(queries: int, train_images: int | None) -> _Data:
    """`queries` test images vs 10x as many training images (the benchmark), and the
    training split (its first `train_images`, default all 60,000) to learn from."""
    query_images, query_labels, gallery, gallery_labels = fashion_split(queries)
    train, train_labels = fashion_mnist(split="train", limit=train_images)
    return _Data(query_images, query_labels, gallery, gallery_labels, train,
                 torch.from_numpy(train_labels))


def _scores(data: _Data, queries: np.ndarray, gallery: np.ndarray) -> tuple[float, float]:
    """(mAP, P@10) of the fashion-mnist benchmark for these vectors."""
    bench = Benchmark("fashion-mnist", queries, gallery, query_labels=data.query_labels,
                      gallery_labels=data.gallery_labels)
    totals, _ = score_benchmark(bench, queries)
    return totals.map / totals.queries, totals.precision[10] / totals.queries


def _embedded(embedder: Embedder, data: _Data) -> tuple[np.ndarray, np.ndarray, float]:
    """(query vectors, gallery vectors, gallery images embedded per second)."""
    started = time.perf_counter()
    gallery = embed_arrays(embedder, data.gallery)
    rate = len(data.gallery) / (time.perf_counter() - started)
    return embed_arrays(embedder, data.queries), gallery, rate


def _accuracy(net: EmbeddingNet, vectors: np.ndarray, labels: np.ndarray) -> float:
    """Share of queries whose softmax head's top class is their label."""
    with torch.inference_mode():
        predicted = net.logits(torch.from_numpy(vectors)).argmax(dim=1).numpy()
    return float((predicted == labels).mean())


def trained_row(name: str, data: _Data, budget: Budget) -> ZooRow:
    """Train registry network `name` from scratch on the budget, then measure it."""
    spec = get_backbone(name)
    size = spec.weights.input_size
    torch.manual_seed(budget.seed)
    net, _ = build_network(spec, weights=None, pooling="gem", classes=CLASSES)

    def batch(rows: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        return fashion_pixels(data.train[rows], size), data.train_labels[rows]

    run = train_on_budget(net, batch, count=len(data.train), budget=budget)
    embedder = Embedder(net.trunk, spec=spec, options=EmbedderOptions(
        batch_size=EMBED_BATCH, forward_batch=64, pooling=net.pooling, gem_p=net.gem_p))
    queries, gallery, rate = _embedded(embedder, data)
    map_score, p10 = _scores(data, queries, gallery)
    return ZooRow(
        network=name, training="scratch", input_size=size, dim=spec.dim, map=map_score,
        p10=p10, accuracy=_accuracy(net, queries, data.query_labels),
        params=parameter_count(net), multiply_adds=multiply_adds(net.trunk, input_size=size),
        images_per_s=rate, train_seconds=run.seconds, epochs=run.epochs,
        final_loss=float(np.mean(run.losses[-20:])) if run.losses else None)


def reference_rows(data: _Data, *, torch_home: Path, whiten_dim: int) -> list[ZooRow]:
    """The pretrained MobileNetV2 off the shelf (GAP, 224 px) and with learned whitening."""
    spec = get_backbone(REFERENCE)
    trunk = load_feature_extractor(
        spec, weights=resolve_weights(spec, explicit=None, torch_home=torch_home))
    embedder = Embedder(trunk, spec=spec,
                        options=EmbedderOptions(batch_size=64, forward_batch=32, pooling="gap"))
    queries, gallery, rate = _embedded(embedder, data)
    size = spec.weights.input_size
    common = dict(input_size=size, accuracy=None, params=parameter_count(trunk),
                  multiply_adds=multiply_adds(trunk, input_size=size), images_per_s=rate)
    whitening = fit_learned_whitening(gallery, data.gallery_labels, dim=whiten_dim)
    whitened = (apply_whitening(whitening, queries), apply_whitening(whitening, gallery))
    plain_map, plain_p10 = _scores(data, queries, gallery)
    white_map, white_p10 = _scores(data, *whitened)
    return [
        ZooRow(network=REFERENCE, training="ImageNet", dim=spec.dim,
               map=plain_map, p10=plain_p10, **common),  # type: ignore[arg-type]
        ZooRow(network=f"{REFERENCE} + Lw", training=f"ImageNet + Lw ({whiten_dim} d)",
               dim=whiten_dim, map=white_map, p10=white_p10, **common),  # type: ignore[arg-type]
    ]


def raw_pixels_row(data: _Data) -> ZooRow:
    """The floor: each image's 784 pixels as its vector."""
    started = time.perf_counter()
    gallery = raw_pixels(data.gallery)
    rate = len(data.gallery) / max(time.perf_counter() - started, 1e-9)
    map_score, p10 = _scores(data, raw_pixels(data.queries), gallery)
    return ZooRow(network="raw pixels", training="none", input_size=28, dim=784, map=map_score,
                  p10=p10, accuracy=None, params=0, multiply_adds=0, images_per_s=rate)


def run_zoo(*, networks: Sequence[str] = DEFAULT_NETWORKS, budget: Budget, queries: int = 1000,
            train_images: int | None = None, reference: bool = True, whiten_dim: int = 32,
            torch_home: Path, on_row: Callable[[ZooRow], None] = lambda row: None) -> ZooResult:
    """Train and measure every network in turn (same budget each), then the reference rows."""
    for name in networks:
        get_backbone(name)  # an unknown name fails before any training
    data = _load(queries, train_images)
    rows: list[ZooRow] = []
    for name in networks:
        log.info("zoo: training %s", name)
        rows.append(trained_row(name, data, budget))
        on_row(rows[-1])
    extra = reference_rows(data, torch_home=torch_home, whiten_dim=whiten_dim) if reference else []
    for row in [*extra, raw_pixels_row(data)]:
        rows.append(row)
        on_row(row)
    return ZooResult(rows=rows, queries=len(data.queries), gallery=len(data.gallery),
                     train_images=len(data.train), seconds=budget.seconds, epochs=budget.epochs,
                     torch_threads=torch.get_num_threads())
