"""EmbeddingNet and freeze_blocks on real backbones; its vectors equal the Embedder's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data
from torch import nn

from lookalike.retrieval.embedding.embedder import Embedder, EmbedderOptions, image_to_pixels
from lookalike.retrieval.errors import InvalidTrainingConfig, UnknownPooling
from lookalike.retrieval.models.registry import get_backbone, resolve_weights
from lookalike.retrieval.training.heads import ProjectionHead
from lookalike.retrieval.training.network import (
    EmbeddingNet,
    build_network,
    freeze_blocks,
    trunk_blocks,
)

LENET = get_backbone("lenet5")
MOBILENET = get_backbone("mobilenet_v2")


def _photos(size: int) -> torch.Tensor:
    """Four real photos as a (4,3,size,size) uint8 batch."""
    images = [data.chelsea(), data.astronaut(), data.coffee(), data.rocket()]
    return torch.stack([image_to_pixels(Image.fromarray(image), size=size) for image in images])


def _lenet(**options: object) -> EmbeddingNet:
    torch.manual_seed(0)
    return build_network(LENET, weights=None, **options)[0]


@pytest.mark.parametrize("pooling", ["gap", "gem"])
def test_embeddings_are_unit_norm_float32_of_the_right_size(pooling: str) -> None:
    net = _lenet(pooling=pooling).eval()
    vectors = net(_photos(32))
    assert vectors.shape == (4, 84) and vectors.dtype == torch.float32
    assert torch.allclose(vectors.norm(dim=1), torch.ones(4), atol=1e-6)
    with_head = _lenet(pooling=pooling, out_dim=16, hidden=32).eval()
    assert with_head(_photos(32)).shape == (4, 16) == (4, with_head.dim)


def test_gem_p_is_learnable_and_gap_has_none() -> None:
    gem = _lenet(pooling="gem", gem_p=2.5)
    assert gem.gem_p == 2.5 and gem.p.requires_grad
    assert not _lenet(pooling="gap").p.requires_grad
    with pytest.raises(UnknownPooling, match="allowed: gap, gem"):
        _lenet(pooling="rmac")


def test_logits_are_scaled_cosines_to_each_class() -> None:
    net = _lenet(classes=10).eval()
    logits = net.logits(net(_photos(32)))
    assert logits.shape == (4, 10)
    assert logits.abs().max() <= 16.0 + 1e-4
    with pytest.raises(InvalidTrainingConfig, match="no classifier"):
        _lenet().logits(torch.zeros(1, 84))


def test_freeze_blocks_counts_the_parameters_left_to_train() -> None:
    net = _lenet()
    assert len(trunk_blocks(net.trunk)) == 4
    total = sum(p.numel() for p in net.trunk.parameters())
    assert freeze_blocks(net.trunk, 0) == total
    assert freeze_blocks(net.trunk, 2) == (400 * 120 + 120) + (120 * 84 + 84)
    assert not any(p.requires_grad for p in net.trunk[0].parameters())
    assert freeze_blocks(net.trunk, 4) == 0
    assert freeze_blocks(net.trunk, 1) == total - (6 * 25 + 6)  # unfreezes again
    with pytest.raises(InvalidTrainingConfig, match="cannot freeze 5 blocks: this trunk has 4"):
        freeze_blocks(net.trunk, 5)


def test_frozen_batch_norm_keeps_its_statistics_in_train_mode() -> None:
    net, _ = build_network(get_backbone("resnet18"), weights=None)
    blocks = trunk_blocks(net.trunk)
    assert len(blocks) == 8  # conv1, bn1, relu, maxpool, layer1..4
    freeze_blocks(net.trunk, 5)
    net.train()
    assert not blocks[1].training  # bn1, frozen
    assert blocks[6].training and blocks[6][0].bn1.training  # layer3, trained
    before = blocks[1].running_mean.clone()
    net(torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8))
    assert torch.equal(blocks[1].running_mean, before)


@pytest.mark.parametrize(("pooling", "head"), [("gap", None), ("gem", 16), ("gem", None)])
def test_lenet_net_and_embedder_give_the_same_vectors(pooling: str, head: int | None) -> None:
    net = _lenet(pooling=pooling, gem_p=2.5, out_dim=head, hidden=None if head is None else 32)
    with torch.no_grad():
        net.p.fill_(2.7)  # a learned exponent, not the default
    net.eval()
    embedder = Embedder(net.trunk, spec=LENET, head=net.head,
                        options=EmbedderOptions(pooling=pooling, gem_p=net.gem_p))
    pixels = _photos(32)
    expected = net(pixels).detach().numpy()
    assert embedder.dim == expected.shape[1]
    np.testing.assert_allclose(embedder.embed_tensors(pixels), expected, atol=1e-5)


def test_mobilenet_net_and_embedder_give_the_same_vectors(tmp_path: Path) -> None:
    weights = resolve_weights(MOBILENET, explicit=None, torch_home=tmp_path)
    net, _ = build_network(MOBILENET, weights=weights, pooling="gem", out_dim=64)
    net.eval()
    embedder = Embedder(net.trunk, spec=MOBILENET, head=net.head,
                        options=EmbedderOptions(pooling="gem", gem_p=net.gem_p))
    pixels = _photos(224)
    with torch.no_grad():
        expected = net(pixels).numpy()
    np.testing.assert_allclose(embedder.embed_tensors(pixels), expected, atol=1e-4)


def test_a_head_of_the_wrong_input_size_is_refused_by_the_embedder() -> None:
    with pytest.raises(ValueError, match="head expects dimension 32, but the vectors before it"):
        Embedder(nn.Sequential(nn.Conv2d(3, 84, 1)), spec=LENET, options=EmbedderOptions(),
                 head=ProjectionHead(32, 8))
