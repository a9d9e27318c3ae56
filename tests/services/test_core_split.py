"""How the settings split the cores between decoding and the model: where the model runs one
thread, ingest's workers decode and embed, one a core; elsewhere half the cores decode."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from lookalike.services import config
from lookalike.services.config import Settings

SPLIT_VARIABLES = ("LOOKALIKE_DECODE_WORKERS", "LOOKALIKE_TORCH_THREADS",
                   "LOOKALIKE_EMBED_IN_WORKERS")


@pytest.fixture
def cores(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in SPLIT_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.mark.parametrize(("usable", "threads", "embed", "workers"),
                         [(1, 1, True, 1), (2, 1, True, 2), (16, 8, False, 8)])
def test_unset_the_split_follows_the_cores(cores: pytest.MonkeyPatch, tmp_path: Path,
                                           usable: int, threads: int, embed: bool,
                                           workers: int) -> None:
    cores.setattr(config, "usable_cpus", lambda: usable)
    settings = Settings(home=tmp_path)
    assert (settings.torch_threads, settings.embed_in_workers, settings.decode_workers) == (
        threads, embed, workers)


def test_what_is_set_decides_the_rest(cores: pytest.MonkeyPatch, tmp_path: Path) -> None:
    cores.setattr(config, "usable_cpus", lambda: 16)
    cores.setenv("LOOKALIKE_TORCH_THREADS", "1")
    one_thread = Settings(home=tmp_path)
    assert (one_thread.embed_in_workers, one_thread.decode_workers) == (True, 16)
    cores.delenv("LOOKALIKE_TORCH_THREADS")
    cores.setenv("LOOKALIKE_DECODE_WORKERS", "12")
    assert (Settings(home=tmp_path).torch_threads, Settings(home=tmp_path).embed_in_workers) == (
        4, False)
    cores.setenv("LOOKALIKE_EMBED_IN_WORKERS", "false")
    cores.setattr(config, "usable_cpus", lambda: 2)
    cores.delenv("LOOKALIKE_DECODE_WORKERS")
    apart = Settings(home=tmp_path)
    assert (apart.torch_threads, apart.embed_in_workers, apart.decode_workers) == (1, False, 1)


def test_workers_embed_only_with_one_model_thread(cores: pytest.MonkeyPatch,
                                                  tmp_path: Path) -> None:
    cores.setattr(config, "usable_cpus", lambda: 16)
    cores.setenv("LOOKALIKE_EMBED_IN_WORKERS", "true")
    with pytest.raises(ValidationError, match="needs LOOKALIKE_TORCH_THREADS=1"):
        Settings(home=tmp_path)
    cores.setenv("LOOKALIKE_TORCH_THREADS", "1")
    assert Settings(home=tmp_path).decode_workers == 16


def test_where_workers_are_not_forked_they_do_not_embed(cores: pytest.MonkeyPatch,
                                                        tmp_path: Path) -> None:
    """A spawned worker cannot inherit the model (macOS and Windows start workers so)."""
    cores.setattr(config, "usable_cpus", lambda: 2)
    cores.setattr(config, "start_method", lambda: "spawn")
    settings = Settings(home=tmp_path)
    assert (settings.torch_threads, settings.embed_in_workers, settings.decode_workers) == (
        1, False, 1)
