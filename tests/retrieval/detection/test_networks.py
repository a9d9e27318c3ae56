"""The detection networks: output shapes, and losses on hand-made boxes that behave."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch
from PIL import Image

from lookalike.retrieval.detection.finding import find_boxes
from lookalike.retrieval.detection.namer import TOP_LABELS, Namer, PretrainedNamer, TwoStage
from lookalike.retrieval.detection.networks import (
    TWO_STAGE,
    TWO_STAGE_PRETRAINED,
    DenseBoxes,
    DetectorConfig,
    Localizer,
    build_detector,
    cell_centres,
    localizer_loss,
    mobilenet_trunk,
    trunk_parameters,
)
from lookalike.retrieval.detection.training import detect
from lookalike.retrieval.errors import InvalidTrainingConfig


@pytest.fixture(autouse=True)
def _seeded() -> None:
    torch.manual_seed(0)


def test_localizer_gives_logits_and_ordered_boxes_inside_the_image() -> None:
    model = Localizer(mobilenet_trunk(None), classes=7).eval()
    logits, boxes = model(torch.randn(3, 3, 64, 64))
    assert logits.shape == (3, 7) and boxes.shape == (3, 4)
    assert (boxes >= 0).all() and (boxes <= 1).all()
    assert (boxes[:, 2] >= boxes[:, 0]).all() and (boxes[:, 3] >= boxes[:, 1]).all()


def test_localizer_cells_start_at_prior_sized_boxes_on_themselves() -> None:
    model = Localizer(mobilenet_trunk(None), classes=4, prior=0.25)
    targets = torch.tensor([[0.1, 0.1, 0.4, 0.5], [0.5, 0.5, 0.9, 0.9]])
    logits, dense = model.train().taught(torch.randn(2, 3, 128, 128), targets)
    assert logits.shape == (2, 4)
    cells = 16 * 16  # the stride-8 map of a 128-px image
    assert dense.side == 16 and dense.scores.shape == (2, cells)
    assert dense.boxes.shape == (2, cells, 4)
    centres = cell_centres(16, torch.float32)
    assert torch.allclose(dense.boxes[0, :, :2], centres - 0.125)
    assert torch.allclose(dense.boxes[1, :, 2:], centres + 0.125)


def _dense(best: int, box: list[float], side: int = 2) -> DenseBoxes:
    """A 2 x 2 map whose cell `best` scores high, every cell answering `box`."""
    scores = torch.full((1, side * side), -5.0)
    scores[0, best] = 5.0
    return DenseBoxes(scores, torch.tensor([box] * side * side)[None], side)


def test_localizer_answers_the_box_of_its_best_cell() -> None:
    dense = DenseBoxes(torch.tensor([[0.0, 3.0, 1.0, 0.0]]),
                       torch.arange(16, dtype=torch.float32).view(1, 4, 4), 2)
    assert dense.best().tolist() == [[4.0, 5.0, 6.0, 7.0]]


def test_the_cells_near_a_centre_are_weighted_by_their_distance() -> None:
    dense = _dense(0, [0.0, 0.0, 1.0, 1.0], side=4)
    near = dense.near(torch.tensor([[0.1, 0.1, 0.3, 0.5]]))  # centre (0.2, 0.3)
    assert near[0].argmax() == 4  # the cell at (0.125, 0.375) holds it
    assert set((near[0] > 0).nonzero().flatten().tolist()) == {0, 1, 4, 5}
    assert (near[0, [2, 3, 8, 15]] == 0).all()


def test_localizer_loss_is_smallest_for_the_right_box_cell_and_class() -> None:
    target = torch.tensor([[0.1, 0.1, 0.4, 0.4]])  # centred on the top-left cell (0) only
    box = target[0].tolist()
    right = torch.tensor([[5.0, 0.0, 0.0]])
    wrong = torch.tensor([[0.0, 5.0, 0.0]])
    label = torch.tensor([0])
    exact = localizer_loss(right, _dense(0, box), label, target)
    shifted = localizer_loss(right, _dense(0, [v + 0.1 for v in box]), label, target)
    disjoint = localizer_loss(right, _dense(0, [0.7, 0.8, 0.9, 0.95]), label, target)
    other_cell = localizer_loss(right, _dense(3, box), label, target)
    misclassified = localizer_loss(wrong, _dense(0, box), label, target)
    assert float(exact) < 0.05
    assert float(exact) < float(shifted) < float(disjoint)
    assert float(other_cell) > float(exact) + 5
    assert float(misclassified) > float(exact) + 4


def test_localizer_loss_has_gradients_for_both_heads() -> None:
    model = Localizer(mobilenet_trunk(None), classes=3)
    targets = torch.tensor([[0.1, 0.1, 0.5, 0.5], [0.3, 0.2, 0.9, 0.8]])
    logits, dense = model.train().taught(torch.randn(2, 3, 64, 64), targets)
    localizer_loss(logits, dense, torch.tensor([0, 2]), targets).backward()
    for head in (model.classify[0], model.objectness, model.regress, model.deep, model.fine):
        assert head.weight.grad is not None and head.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("architecture", ["fcos", "fasterrcnn"])
def test_detectors_train_on_hand_made_boxes_and_answer_in_input_pixels(
        architecture: str) -> None:
    model = build_detector(DetectorConfig(architecture, ("bag", "shoe"), 96), trunk_weights=None)
    images = [torch.rand(3, 96, 96), torch.rand(3, 96, 96)]
    targets = [{"boxes": torch.tensor([[10.0, 12.0, 50.0, 60.0]]), "labels": torch.tensor([1])},
               {"boxes": torch.tensor([[0.0, 0.0, 30.0, 30.0], [40.0, 40.0, 90.0, 95.0]]),
                "labels": torch.tensor([2, 1])}]
    losses = model.train()(images, targets)
    assert all(torch.isfinite(v) and v >= 0 for v in losses.values())
    model.eval()
    outputs = model(images)
    for output in outputs:
        count = len(output["boxes"])
        assert output["boxes"].shape == (count, 4) and output["scores"].shape == (count,)
        assert (output["boxes"] >= 0).all() and (output["boxes"] <= 96).all()
    pixels = [(image.permute(1, 2, 0).numpy() * 255).astype(np.uint8) for image in images]
    for boxes, scores, labels in detect(model, pixels):
        assert boxes.shape == (len(scores), 4) and set(labels.tolist()) <= {1, 2}


def test_unknown_architecture_names_the_available_ones() -> None:
    with pytest.raises(InvalidTrainingConfig, match="fcos, fasterrcnn"):
        build_detector(DetectorConfig("yolo", ("a",), 96), trunk_weights=None)


@pytest.mark.parametrize(("architecture", "namer"), [(TWO_STAGE, Namer),
                                                     (TWO_STAGE_PRETRAINED, PretrainedNamer)])
def test_two_stage_answers_each_found_box_under_its_likeliest_classes(
        architecture: str, namer: type) -> None:
    model = build_detector(DetectorConfig(architecture, ("bag", "shoe", "coat", "dress"), 96),
                           trunk_weights=None)
    assert isinstance(model, TwoStage) and isinstance(model.namer, namer)
    finder_losses = model.finder.train()(
        [torch.rand(3, 96, 96)],
        [{"boxes": torch.tensor([[10.0, 12.0, 50.0, 60.0]]), "labels": torch.tensor([1])}])
    assert all(torch.isfinite(v) for v in finder_losses.values())
    model.finder.score_thresh = 0.0  # an untrained finder scores low: keep every box
    images = [torch.rand(3, 96, 96), torch.rand(3, 96, 80)]
    for output in model.eval()(images):
        boxes, scores, labels = output["boxes"], output["scores"], output["labels"]
        assert len(boxes) % TOP_LABELS == 0 and len(boxes) > 0
        assert (scores[:-1] >= scores[1:]).all() and (scores <= 1).all()
        assert set(labels.tolist()) <= {1, 2, 3, 4}
        # an untrained finder may find the same empty box twice: each finding is answered
        # under TOP_LABELS distinct classes
        for box in boxes.unique(dim=0):
            same = (boxes == box).all(dim=1)
            findings, rest = divmod(int(same.sum()), TOP_LABELS)
            assert findings >= 1 and rest == 0
            assert set(Counter(labels[same].tolist()).values()) == {findings}
            assert len(set(labels[same].tolist())) == TOP_LABELS


class _Answers(torch.nn.Module):
    """A two-stage detector's answer, fixed: one box under three labels, another under two."""

    def forward(self, images: list[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        return [{"boxes": torch.tensor([[10.0, 10.0, 50.0, 50.0]] * 3
                                       + [[60.0, 60.0, 90.0, 90.0]] * 2),
                 "scores": torch.tensor([0.6, 0.3, 0.1, 0.2, 0.1]),
                 "labels": torch.tensor([2, 1, 3, 1, 2])} for _ in images]


def test_find_boxes_keeps_each_two_stage_box_once_with_its_best_label() -> None:
    config = DetectorConfig(TWO_STAGE, ("bag", "shoe", "coat"), 96)
    image = Image.new("RGB", (192, 96))
    found = find_boxes(_Answers(), config, [image], threshold=0.15)[0]
    assert [(b.x0, b.y0, b.x1, b.y1, b.label, b.score) for b in found] == [
        (20.0, 10.0, 100.0, 50.0, "shoe", 0.6), (120.0, 60.0, 180.0, 90.0, "bag", 0.2)]


class _SureFinder(torch.nn.Module):
    """A finder that boxes one object, sure of it (0.6)."""

    def forward(self, images: list[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        return [{"boxes": torch.tensor([[10.0, 10.0, 50.0, 50.0]]),
                 "scores": torch.tensor([0.6]), "labels": torch.tensor([1])} for _ in images]


class _TornNamer(torch.nn.Module):
    """A namer torn between a shirt (0.45) and a coat (0.35); a bag 0.2."""

    side = 16

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        return torch.log(torch.tensor([[0.2, 0.45, 0.35]])).expand(len(crops), 3)


def test_a_box_the_namer_is_torn_over_is_still_found() -> None:
    """finder 0.6 x probability 0.45 would fall under the 0.3 threshold and lose an object
    the finder is sure of; the answer is scored with the probability's root instead."""
    model = TwoStage(_SureFinder(), _TornNamer()).eval()  # type: ignore[arg-type]
    config = DetectorConfig(TWO_STAGE, ("bag", "shirt", "coat"), 96)
    found = find_boxes(model, config, [Image.new("RGB", (96, 96))], threshold=0.3)[0]
    assert [b.label for b in found] == ["shirt"]
    assert found[0].score == pytest.approx(0.6 * 0.45 ** 0.5, abs=1e-4)


def test_only_the_pretrained_namer_has_a_trunk_to_train_slower() -> None:
    small = build_detector(DetectorConfig(TWO_STAGE, ("a", "b"), 96), trunk_weights=None)
    pretrained = build_detector(DetectorConfig(TWO_STAGE_PRETRAINED, ("a", "b"), 96),
                                trunk_weights=None)
    assert isinstance(small, TwoStage) and isinstance(pretrained, TwoStage)
    assert trunk_parameters(small.namer) == set()
    trunk = trunk_parameters(pretrained.namer)
    assert trunk == {id(p) for p in pretrained.namer.features.parameters()}
    assert not trunk & {id(p) for p in pretrained.namer.classify.parameters()}
