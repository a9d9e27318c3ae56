"""The namers: crops of hand-made boxes hold the boxed object, jitter keeps boxes valid, and
each namer's loss falls when it learns two hand-made shapes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from lookalike.retrieval.detection.namer import (
    JITTER,
    NAMER_SIDE,
    PRETRAINED_SIDE,
    CropNamer,
    Namer,
    PretrainedNamer,
    box_crops,
    jittered,
    namer_loss,
)
from lookalike.retrieval.detection.networks import TRUNK_BACKBONE, mobilenet_trunk
from lookalike.retrieval.models.registry import get_backbone, resolve_weights


def _square_on_noise(box: tuple[int, int, int, int], *, ring: bool = False) -> torch.Tensor:
    """A dim noisy (3, 96, 96) image with a bright square (or a square ring) at `box`."""
    image = torch.rand(3, 96, 96) * 0.2
    x0, y0, x1, y1 = box
    image[:, y0:y1, x0:x1] = 0.9
    if ring:
        inset = (x1 - x0) // 4
        image[:, y0 + inset:y1 - inset, x0 + inset:x1 - inset] = 0.1
    return image


def test_crops_hold_the_boxed_object_standardised_at_the_namer_side() -> None:
    torch.manual_seed(0)
    image = _square_on_noise((20, 30, 60, 70))
    crops = box_crops(image, torch.tensor([[20.0, 30.0, 60.0, 70.0], [0.0, 0.0, 16.0, 16.0]]))
    assert crops.shape == (2, 3, NAMER_SIDE, NAMER_SIDE)
    assert torch.allclose(crops.mean(dim=(1, 2, 3)), torch.zeros(2), atol=1e-4)
    centre = slice(NAMER_SIDE // 4, 3 * NAMER_SIDE // 4)
    assert float(crops[0, :, centre, centre].mean()) > 0.5  # the square fills the middle
    assert float(crops[0, :, :2, :2].mean()) < -0.5  # the context around it is background
    assert box_crops(image, torch.zeros(0, 4)).shape == (0, 3, NAMER_SIDE, NAMER_SIDE)
    larger = box_crops(image, torch.tensor([[20.0, 30.0, 60.0, 70.0]]), PRETRAINED_SIDE)
    assert larger.shape == (1, 3, PRETRAINED_SIDE, PRETRAINED_SIDE)


def test_jittered_boxes_stay_ordered_and_near_the_original() -> None:
    generator = torch.Generator().manual_seed(1)
    boxes = torch.tensor([[10.0, 10.0, 50.0, 30.0], [0.0, 0.0, 4.0, 4.0]]).repeat(200, 1)
    moved = jittered(boxes, generator)
    assert (moved[:, 2] > moved[:, 0]).all() and (moved[:, 3] > moved[:, 1]).all()
    size = (boxes[:, 2:] - boxes[:, :2]).repeat(1, 2)
    assert ((moved - boxes).abs() <= JITTER * size + 1).all()
    assert not torch.equal(moved, boxes)


def _small(torch_home: Path) -> CropNamer:
    return Namer(classes=2)


def _pretrained(torch_home: Path) -> CropNamer:
    """The ImageNet trunk, as the detector builds it."""
    weights = resolve_weights(get_backbone(TRUNK_BACKBONE), explicit=None, torch_home=torch_home)
    return PretrainedNamer(mobilenet_trunk(weights), 1280, classes=2)


@pytest.mark.parametrize(("build", "lr"), [(_small, 3e-3), (_pretrained, 1e-4)])
def test_a_namer_learns_to_tell_two_shapes_apart(
        build: Callable[[Path], CropNamer], lr: float, tmp_path: Path) -> None:
    torch.manual_seed(2)
    boxes = [torch.tensor([[10.0 + 4 * i, 20.0, 50.0 + 4 * i, 60.0]]) for i in range(8)]
    images = [_square_on_noise(tuple(int(v) for v in b[0]), ring=i % 2 == 1)
              for i, b in enumerate(boxes)]
    labels = [torch.tensor([1 + i % 2]) for i in range(8)]
    namer = build(tmp_path)
    optimizer = torch.optim.AdamW(namer.parameters(), lr=lr)
    first = namer_loss(namer, images, boxes, labels).item()
    for _ in range(30):
        loss = namer_loss(namer, images, boxes, labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    namer.eval()
    logits = namer(torch.cat([box_crops(i, b, namer.side)
                              for i, b in zip(images, boxes, strict=True)]))
    assert namer_loss(namer, images, boxes, labels).item() < first / 2  # eval mode
    assert logits.shape == (8, 2)
    assert logits.argmax(dim=1).tolist() == [i % 2 for i in range(8)]
