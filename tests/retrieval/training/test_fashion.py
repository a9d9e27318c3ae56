"""A short real fine-tune: LeNet-5 trained on Fashion-MNIST finds held-out images better."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from lookalike.retrieval.embedding.embedder import Embedder, EmbedderOptions
from lookalike.retrieval.evaluation.metrics import label_map
from lookalike.retrieval.models.registry import get_backbone
from lookalike.retrieval.training.network import EmbeddingNet, build_network
from lookalike.retrieval.training.trainer import TrainConfig, fit
from lookalike.services.evaluation.benchmarks import fashion_pixels
from tests.retrieval.training.conftest import FashionItems

LENET = get_backbone("lenet5")


def _held_out_map(net: EmbeddingNet, images: np.ndarray, labels: np.ndarray) -> float:
    """Leave-one-out mAP of held-out images, embedded the way a space embeds them."""
    net.eval()
    embedder = Embedder(net.trunk, spec=LENET, head=net.head,
                        options=EmbedderOptions(batch_size=200, pooling=net.pooling,
                                                gem_p=net.gem_p))
    return label_map(embedder.embed_tensors(fashion_pixels(images, 32)), labels)


@pytest.mark.parametrize("loss", ["contrastive", "softmax"])
def test_training_lenet_raises_held_out_map(loss: str, fashion_train, tmp_path: Path) -> None:
    images, labels = fashion_train
    train, held_out = FashionItems(images[:1600], labels[:1600]), (images[1600:], labels[1600:])
    torch.manual_seed(0)
    net = build_network(LENET, weights=None, pooling="gem",
                        classes=10 if loss == "softmax" else None)[0]
    before = _held_out_map(net, *held_out)
    config = TrainConfig(epochs=3, batch_size=100, lr=3e-3, loss=loss, margin=0.7,
                         classes_per_batch=10)
    history = fit(net, train, config=config, checkpoint=tmp_path / "run.pt",
                  validate=lambda model: _held_out_map(model, *held_out))
    after = _held_out_map(net, *held_out)
    assert after == pytest.approx(history[-1].val_map)
    assert after > before + 0.15, (before, after)  # measured: 0.38 -> 0.63
