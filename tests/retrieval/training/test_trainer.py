"""The training loop on real Fashion-MNIST images: checkpoints, resume, stop, validation."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from torch import nn

from lookalike.retrieval.errors import (
    CheckpointCorrupt,
    CheckpointMismatch,
    InvalidTrainingConfig,
    TrainingStopped,
    UnknownTransform,
)
from lookalike.retrieval.models.registry import get_backbone
from lookalike.retrieval.training.checkpoint import load_checkpoint
from lookalike.retrieval.training.heads import ProjectionHead
from lookalike.retrieval.training.network import EmbeddingNet, build_network
from lookalike.retrieval.training.trainer import EpochRecord, TrainConfig, fit
from tests.retrieval.training.conftest import FashionItems

TRIPLET = TrainConfig(epochs=2, batch_size=24, lr=1e-3, loss="triplet", classes_per_batch=6,
                      augment=("mirror", "random_crop", "rotate"), seed=3)
SOFTMAX = TrainConfig(epochs=2, batch_size=32, lr=2e-3, loss="softmax", seed=3)


def _net(config: TrainConfig) -> EmbeddingNet:
    """LeNet-5 from the same random start every time."""
    torch.manual_seed(0)
    classes = 10 if config.loss == "softmax" else None
    return build_network(get_backbone("lenet5"), weights=None, pooling="gem", classes=classes)[0]


def _same_weights(first: nn.Module, second: nn.Module) -> bool:
    one, two = first.state_dict(), second.state_dict()
    return one.keys() == two.keys() and all(torch.equal(one[k], two[k]) for k in one)


@pytest.fixture(scope="module", params=[TRIPLET, SOFTMAX], ids=["triplet", "softmax"])
def uninterrupted(request: pytest.FixtureRequest, small_train: FashionItems,
                  tmp_path_factory: pytest.TempPathFactory
                  ) -> tuple[TrainConfig, EmbeddingNet, list[EpochRecord], Path]:
    """A 2-epoch run that never stopped, and a copy of its checkpoint after epoch 1."""
    config, folder = request.param, tmp_path_factory.mktemp("run")
    net = _net(config)

    def keep_first(record: EpochRecord) -> None:
        if record.epoch == 1:
            shutil.copyfile(folder / "run.pt", folder / "after-epoch-1.pt")

    history = fit(net, small_train, config=config, checkpoint=folder / "run.pt",
                  on_epoch=keep_first)
    return config, net, history, folder / "after-epoch-1.pt"


def test_a_run_reports_every_epoch_and_checkpoints_it(uninterrupted, tmp_path: Path) -> None:
    config, net, history, after_first = uninterrupted
    assert [record.epoch for record in history] == [1, 2]
    assert all(record.loss > 0 and record.seconds > 0 for record in history)
    state = load_checkpoint(after_first)
    assert state["epoch"] == 1 and state["history"][0]["loss"] == history[0].loss
    assert not _same_weights(net, _net(config))  # it trained


def test_resuming_from_epoch_one_gives_the_uninterrupted_weights(uninterrupted,
                                                                 small_train: FashionItems,
                                                                 tmp_path: Path) -> None:
    config, net, history, after_first = uninterrupted
    checkpoint = Path(shutil.copyfile(after_first, tmp_path / "resume.pt"))
    resumed = _net(config)
    again = fit(resumed, small_train, config=config, checkpoint=checkpoint)
    assert [(r.epoch, r.loss) for r in again] == [(r.epoch, r.loss) for r in history]
    assert _same_weights(resumed, net)


def test_a_run_stopped_mid_epoch_resumes_to_the_same_weights(uninterrupted,
                                                             small_train: FashionItems,
                                                             tmp_path: Path) -> None:
    config, net, history, _ = uninterrupted
    checkpoint, asked = tmp_path / "stopped.pt", []
    steps = len(small_train) // config.batch_size

    def stop_in_second_epoch() -> bool:
        asked.append(True)
        return len(asked) > steps + 2

    with pytest.raises(TrainingStopped, match="during epoch 2; the checkpoint holds the 1"):
        fit(_net(config), small_train, config=config, checkpoint=checkpoint,
            should_stop=stop_in_second_epoch)
    assert load_checkpoint(checkpoint)["epoch"] == 1
    resumed = _net(config)
    again = fit(resumed, small_train, config=config, checkpoint=checkpoint)
    assert _same_weights(resumed, net)
    assert [r.loss for r in again] == [r.loss for r in history]


def test_a_finished_checkpoint_returns_its_history_without_training(uninterrupted,
                                                                    small_train: FashionItems,
                                                                    tmp_path: Path) -> None:
    config, net, history, after_first = uninterrupted
    finished = Path(shutil.copyfile(after_first.parent / "run.pt", tmp_path / "done.pt"))
    fresh = _net(config)
    again = fit(fresh, small_train, config=config, checkpoint=finished, should_stop=lambda: True)
    assert again == history
    assert _same_weights(fresh, net)


def test_validation_runs_after_every_epoch_in_eval_mode(small_train: FashionItems,
                                                        tmp_path: Path) -> None:
    seen: list[bool] = []

    def validate(model: nn.Module) -> float:
        seen.append(model.training)
        return 0.25 * len(seen)

    records: list[EpochRecord] = []
    history = fit(_net(SOFTMAX), small_train, config=SOFTMAX, checkpoint=tmp_path / "v.pt",
                  validate=validate, on_epoch=records.append)
    assert seen == [False, False]
    assert [r.val_map for r in history] == [0.25, 0.5] and records == history


def test_a_checkpoint_of_other_settings_is_refused(uninterrupted, small_train: FashionItems,
                                                   tmp_path: Path) -> None:
    config, _, _, after_first = uninterrupted
    other = TrainConfig(**{**config.__dict__, "lr": 0.5})
    with pytest.raises(CheckpointMismatch, match=r"other settings \(lr differ\)"):
        fit(_net(config), small_train, config=other, checkpoint=after_first)


def test_a_corrupt_checkpoint_is_refused(small_train: FashionItems, tmp_path: Path) -> None:
    (tmp_path / "bad.pt").write_bytes(b"\x00" * 100)
    with pytest.raises(CheckpointCorrupt, match="bad.pt cannot be read"):
        fit(_net(SOFTMAX), small_train, config=SOFTMAX, checkpoint=tmp_path / "bad.pt")


def test_head_training_on_vectors(small_train: FashionItems, tmp_path: Path) -> None:
    torch.manual_seed(0)
    vectors = torch.nn.functional.normalize(torch.randn(len(small_train), 32), dim=1)
    items = torch.utils.data.TensorDataset(vectors, torch.tensor(small_train.labels))
    head = ProjectionHead(32, 8, hidden=16)
    config = TrainConfig(epochs=1, batch_size=20, loss="contrastive", margin=0.7,
                         classes_per_batch=5)
    history = fit(head, items, config=config, checkpoint=tmp_path / "h.pt",
                  labels=small_train.labels)
    assert len(history) == 1 and history[0].loss > 0


def test_settings_that_cannot_work_are_refused(small_train: FashionItems,
                                               tmp_path: Path) -> None:
    with pytest.raises(InvalidTrainingConfig, match="unknown loss 'arcface'"):
        TrainConfig(epochs=1, loss="arcface")
    with pytest.raises(InvalidTrainingConfig, match="needs >= 2 images per class"):
        TrainConfig(epochs=1, batch_size=8, classes_per_batch=8)
    with pytest.raises(UnknownTransform):
        TrainConfig(epochs=1, augment=("sepia",))
    with pytest.raises(InvalidTrainingConfig, match="softmax loss needs a model with a classifier"):
        fit(_net(TRIPLET), small_train, config=SOFTMAX, checkpoint=tmp_path / "x.pt")


def test_until_epoch_trains_one_epoch_per_call_to_the_same_weights(uninterrupted,
                                                                  small_train: FashionItems,
                                                                  tmp_path: Path) -> None:
    config, net, history, _ = uninterrupted
    stepped, checkpoint = _net(config), tmp_path / "steps.pt"
    first = fit(stepped, small_train, config=config, checkpoint=checkpoint, until_epoch=1)
    assert [r.epoch for r in first] == [1]
    second = fit(_net(config), small_train, config=config, checkpoint=checkpoint, until_epoch=2)
    assert [(r.epoch, r.loss) for r in second] == [(r.epoch, r.loss) for r in history]
