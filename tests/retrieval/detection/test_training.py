"""Training the localization head: its trunk answers the same in train and eval mode (batch
norm frozen at ImageNet's statistics: trained live on small batches of scenes, the head's
eval-mode answers stayed at chance, 13 % of boxes at IoU >= 0.5 on held-out scenes), and a
short real run on hand-made boxes puts boxes on images it never saw and names them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from lookalike.retrieval.detection.namer import Namer
from lookalike.retrieval.detection.networks import (
    TRUNK_BACKBONE,
    Localizer,
    detection_trunk,
)
from lookalike.retrieval.detection.scenes import box_iou
from lookalike.retrieval.detection.training import (
    Sample,
    TrainSettings,
    flipped,
    localize,
    localizer_step,
    namer_step,
    train,
)
from lookalike.retrieval.models.registry import get_backbone, resolve_weights

SIDE = 64
COLOURS = ((230, 40, 40), (40, 80, 230))  # class 1 red, class 2 blue


def hand_made(count: int, seed: int) -> list[Sample]:
    """Grey noise with one filled rectangle (16-48 px a side) of a class's colour on it."""
    rng = np.random.default_rng(seed)
    samples = []
    for _ in range(count):
        pixels = rng.integers(60, 190, size=(SIDE, SIDE, 3)).astype(np.uint8)
        width, height = (int(v) for v in rng.integers(16, 49, size=2))
        x0, y0 = int(rng.integers(0, SIDE - width + 1)), int(rng.integers(0, SIDE - height + 1))
        label = int(rng.integers(0, 2))
        pixels[y0:y0 + height, x0:x0 + width] = COLOURS[label]
        samples.append(Sample(pixels, np.array([[x0, y0, x0 + width, y0 + height]],
                                               dtype=np.float32), np.array([label + 1])))
    return samples


def scores(model: Localizer, samples: list[Sample]) -> tuple[float, float]:
    """Share of boxes with IoU >= 0.5 and class accuracy, in eval mode."""
    boxes, labels, _ = localize(model, [s.pixels for s in samples])
    ious = [box_iou(tuple(b.tolist()), tuple(s.boxes[0].tolist()))
            for b, s in zip(boxes, samples, strict=True)]
    right = [int(label) == int(s.labels[0]) for label, s in zip(labels, samples, strict=True)]
    return float(np.mean(np.array(ious) >= 0.5)), float(np.mean(right))


def test_the_trunk_answers_the_same_in_train_and_eval_mode() -> None:
    torch.manual_seed(0)
    model = Localizer(detection_trunk(None), classes=2)
    images = torch.randn(4, 3, 64, 64)
    with torch.no_grad():
        trained = model.train().trunk(images)
        served = model.eval().trunk(images)
    assert torch.allclose(trained, served)
    assert not any(p.requires_grad for p in model.trunk[0].parameters())


def test_flipping_mirrors_the_boxes_with_the_pixels() -> None:
    sample = hand_made(1, seed=3)[0]
    mirror = flipped(sample)
    x0, y0, x1, y1 = (int(v) for v in mirror.boxes[0])
    colour = COLOURS[int(sample.labels[0]) - 1]
    assert (mirror.pixels[y0:y1, x0:x1] == colour).all()
    assert np.array_equal(flipped(mirror).pixels, sample.pixels)
    assert np.array_equal(flipped(mirror).boxes, sample.boxes)


def test_schedule_warms_up_then_decays_to_zero() -> None:
    settings = TrainSettings(warmup=0.1)
    factors = [settings.lr_factor(step, 100) for step in range(100)]
    assert factors[0] == pytest.approx(0.1) and factors[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(factors[9:], factors[10:], strict=False))
    assert factors[-1] < 0.01


@pytest.mark.slow
def test_a_short_real_run_finds_boxes_on_new_images(tmp_path: Path) -> None:
    torch.manual_seed(0)
    weights = resolve_weights(get_backbone(TRUNK_BACKBONE), explicit=None, torch_home=tmp_path)
    model = Localizer(detection_trunk(weights), classes=2)
    fresh = hand_made(24, seed=2)
    before = scores(model, fresh)
    settings = TrainSettings(epochs=16, batch_size=16, lr=2e-3, seed=0, trunk_lr_scale=0.1)
    history = train(model, hand_made(64, seed=1), localizer_step, settings=settings,
                    checkpoint=tmp_path / "checkpoint.pt", until_epoch=settings.epochs)
    after = scores(model, fresh)
    assert history[-1].loss < history[0].loss
    # seeded: IoU >= 0.5 on 0 % of the fresh images untrained, 100 % after these 64 steps
    # (the sigmoid box head before issue 15: 50 %), every class right. These boxes are easy:
    # the code before the batch-norm fix reached 54 % here too and failed only on real
    # scenes; this checks the whole training path learns.
    assert before[0] < 0.2, before
    assert after[0] >= 0.8 and after[1] >= 0.9, (before, after)


def test_each_epoch_can_draw_its_own_images_and_a_resumed_run_draws_the_same(
        tmp_path: Path) -> None:
    asked: list[int] = []

    def per_epoch(epoch: int) -> list[Sample]:
        asked.append(epoch)
        return hand_made(16, seed=100 + epoch)

    settings = TrainSettings(epochs=4, batch_size=8, lr=2e-3, seed=0, flip=False)
    checkpoint = tmp_path / "namer.pt"
    torch.manual_seed(0)
    first = train(Namer(classes=2), per_epoch, namer_step, settings=settings,
                  checkpoint=checkpoint, until_epoch=2)
    assert asked == [0, 1] and [h.epoch for h in first] == [0, 1]
    torch.manual_seed(1)  # a rebuilt network: the checkpoint restores the trained one
    history = train(Namer(classes=2), per_epoch, namer_step, settings=settings,
                    checkpoint=checkpoint, until_epoch=4)
    assert asked == [0, 1, 2, 3] and [h.epoch for h in history] == [0, 1, 2, 3]
    assert history[-1].loss < history[0].loss
