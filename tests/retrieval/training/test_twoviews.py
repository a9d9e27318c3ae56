"""Self-supervised copy training: the two views of an image differ, and a short real run of
MobileNetV2 with InfoNCE + KoLeo lowers the loss on views it has not seen."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import TensorDataset

from lookalike.retrieval.embedding.embedder import image_to_pixels
from lookalike.retrieval.models.registry import get_backbone, resolve_weights
from lookalike.retrieval.training.copyedits import CopyAugmenter
from lookalike.retrieval.training.network import build_network
from lookalike.retrieval.training.selfsupervised import sscd_loss
from lookalike.retrieval.training.trainer import TrainConfig, fit
from lookalike.retrieval.training.twoviews import copy_view, two_views, view_seed
from lookalike.services.sample import bundled_photos

SIZE = 64
PHOTOS = 8


def _photos() -> list[torch.Tensor]:
    return [image_to_pixels(photo.image, size=SIZE) for photo in bundled_photos()[:PHOTOS]]


def test_two_views_of_an_image_differ_and_repeat_with_their_seed() -> None:
    items, indices = _photos()[:4], [0, 1, 2, 3]
    first, second = two_views(items, indices, augmenter=CopyAugmenter(), seed=0, epoch=0)
    again, _ = two_views(items, indices, augmenter=CopyAugmenter(), seed=0, epoch=0)
    assert first.shape == second.shape == (4, 3, SIZE, SIZE)
    assert all(not torch.equal(a, b) for a, b in zip(first, second, strict=True))
    assert torch.equal(first, again)
    next_epoch, _ = two_views(items, indices, augmenter=CopyAugmenter(), seed=0, epoch=1)
    assert not torch.equal(first, next_epoch)
    assert len({view_seed(0, 0, 0, view) for view in range(2)}) == 2


def _held_out_loss(net: torch.nn.Module, items: list[torch.Tensor]) -> float:
    """The sscd loss on views seeded apart from any training epoch's."""
    augmenter = CopyAugmenter()
    views = [torch.stack([copy_view(pixels, augmenter, view_seed(99, 10**6, i, v))
                          for i, pixels in enumerate(items)]) for v in range(2)]
    net.eval()
    with torch.inference_mode():
        return float(sscd_loss(net(views[0]), net(views[1])))


def test_a_short_real_run_lowers_the_loss(tmp_path: Path) -> None:
    spec = get_backbone("mobilenet_v2")
    torch.set_num_threads(1)
    torch.manual_seed(0)
    weights = resolve_weights(spec, explicit=None, torch_home=tmp_path)
    net, _ = build_network(spec, weights=weights)
    items = _photos()
    train_set = TensorDataset(torch.stack(items), torch.arange(PHOTOS))
    before = _held_out_loss(net, items)
    config = TrainConfig(epochs=4, batch_size=PHOTOS, lr=3e-4, loss="sscd", seed=0)
    history = fit(net, train_set, config=config, checkpoint=tmp_path / "c.pt")
    after = _held_out_loss(net, items)
    assert len(history) == 4 and all(np.isfinite(r.loss) for r in history)
    assert after < before - 0.1, (before, after)
    assert net.gem_p != pytest.approx(3.0)


def test_a_resumed_run_ends_where_an_uninterrupted_one_does(tmp_path: Path) -> None:
    spec = get_backbone("mobilenet_v2")
    torch.set_num_threads(1)
    weights = resolve_weights(spec, explicit=None, torch_home=tmp_path)
    items = [image_to_pixels(photo.image, size=32) for photo in bundled_photos()[:4]]
    train_set = TensorDataset(torch.stack(items), torch.arange(4))
    config = TrainConfig(epochs=2, batch_size=4, lr=3e-4, loss="sscd", seed=3)
    states = []
    for name, stops in (("whole", [None]), ("resumed", [1, None])):
        for until in stops:  # a fresh network each time: the second one resumes from the file
            torch.manual_seed(0)
            net, _ = build_network(spec, weights=weights)
            history = fit(net, train_set, config=config, checkpoint=tmp_path / f"{name}.pt",
                          until_epoch=until)
        states.append((net.state_dict(), [record.loss for record in history]))
    (whole, whole_losses), (resumed, resumed_losses) = states
    assert whole_losses == resumed_losses
    assert all(torch.equal(whole[key], resumed[key]) for key in whole)
