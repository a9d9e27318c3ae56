"""A training epoch takes every core it is given and gives them back: nothing decodes beside
it, unlike embedding, whose threads leave room for the decode workers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from lookalike.services.config import Settings
from lookalike.services.training.threads import training_threads
from tests.services.conftest import make_settings


def test_training_gets_every_usable_core_unless_told(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LOOKALIKE_TRAIN_THREADS", raising=False)
    assert make_settings(tmp_path).train_threads == len(os.sched_getaffinity(0))
    monkeypatch.setenv("LOOKALIKE_TRAIN_THREADS", "3")
    assert Settings(home=tmp_path).train_threads == 3


def test_an_epoch_runs_on_the_training_threads_and_restores_the_serving_ones(
        tmp_path: Path) -> None:
    before = torch.get_num_threads()
    settings = make_settings(tmp_path, train_threads=before + 1)
    with training_threads(settings) as threads:
        assert threads == torch.get_num_threads() == before + 1
    assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError), training_threads(settings):
        raise RuntimeError("an epoch that fails")
    assert torch.get_num_threads() == before
