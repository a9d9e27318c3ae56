"""A space's model call size: measured once on this CPU when LOOKALIKE_FORWARD_BATCH is unset,
kept in the engine folder for every later process, and refused when the kept file is
damaged."""

from __future__ import annotations

import logging
import multiprocessing
from pathlib import Path

import pytest

from lookalike.retrieval.embedding.call_size import CALL_SIZES
from lookalike.retrieval.embedding.embedder import Embedder, EmbedderOptions
from lookalike.retrieval.models.registry import (
    get_backbone,
    load_feature_extractor,
    resolve_weights,
)
from lookalike.services.config import Settings
from lookalike.services.errors import CallSizeUnreadable
from lookalike.services.setup import init_catalog, open_runtime
from lookalike.services.spaces.call_size import kept_call_size
from lookalike.services.spaces.lookup import ensure_default_space
from tests.services.conftest import make_settings

MOBILENET = get_backbone("mobilenet_v2")
MEASURING = "measuring which model call size"
MODULE_LOGGER = "lookalike.services.spaces.call_size"


def _torch_home(tmp_path: Path, **overrides: object) -> Settings:
    """A catalog whose spaces run on torch (no export to wait for), with its own engine
    folder, so that nothing another test kept is read here."""
    settings = make_settings(tmp_path / "home", engine="torch",
                             engine_cache=tmp_path / "engines", **overrides)
    init_catalog(settings)
    return settings


def _default_embedder(settings: Settings) -> Embedder:
    with open_runtime(settings) as runtime:
        with runtime.session() as session:
            space = ensure_default_space(session=session, settings=settings)
            session.commit()
        return runtime.embedder(space)


def _kept_files(settings: Settings) -> list[Path]:
    return sorted((settings.engine_dir / "call-sizes").glob("*.txt"))


def test_an_unset_call_size_is_measured_once_and_read_by_later_processes(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    settings = _torch_home(tmp_path)
    with caplog.at_level(logging.INFO, logger=MODULE_LOGGER):
        measured = _default_embedder(settings).options.forward_batch
        (kept,) = _kept_files(settings)
        assert measured in CALL_SIZES
        assert kept.read_text() == f"{measured}\n"
        assert sum(MEASURING in record.message for record in caplog.records) == 1
        other = next(size for size in CALL_SIZES if size != measured)
        kept.write_text(f"{other}\n")
        assert _default_embedder(settings).options.forward_batch == other
        assert sum(MEASURING in record.message for record in caplog.records) == 1


def test_a_set_call_size_is_used_and_nothing_is_measured(tmp_path: Path) -> None:
    settings = _torch_home(tmp_path, forward_batch=3)
    assert _default_embedder(settings).options.forward_batch == 3
    assert _kept_files(settings) == []


def test_a_damaged_kept_call_size_names_the_file_to_delete(tmp_path: Path) -> None:
    settings = _torch_home(tmp_path)
    _default_embedder(settings)
    (kept,) = _kept_files(settings)
    kept.write_text("\x00\x00")
    with pytest.raises(CallSizeUnreadable, match=f"{kept.name}.*delete it"):
        _default_embedder(settings)


def test_a_folder_that_cannot_be_written_is_measured_in_each_process_and_said(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    settings = _torch_home(tmp_path)
    blocked = settings.engine_dir / "call-sizes"
    blocked.parent.mkdir(parents=True)
    blocked.write_text("a file where the folder should be")
    with caplog.at_level(logging.INFO, logger=MODULE_LOGGER):
        for _ in range(2):
            assert _default_embedder(settings).options.forward_batch in CALL_SIZES
    assert sum(MEASURING in record.message for record in caplog.records) == 2
    warnings = [r.message for r in caplog.records
                if r.levelno == logging.WARNING and r.name == MODULE_LOGGER]
    assert len(warnings) == 2 and all("cannot be kept" in w and "LOOKALIKE_FORWARD_BATCH" in w
                                      for w in warnings)


def _measure_in_a_process(path: Path, log: Path) -> int:
    """kept_call_size in a process of its own, on the real model; each measurement it makes
    is written to `log`."""
    weights = resolve_weights(MOBILENET, explicit=None, torch_home=Settings().torch_home)
    model = load_feature_extractor(MOBILENET, weights=weights)

    def embedder_of(forward_batch: int) -> Embedder:
        with log.open("a") as handle:
            handle.write("measured\n")
        return Embedder(model, spec=MOBILENET,
                        options=EmbedderOptions(forward_batch=forward_batch))
    return kept_call_size(path, embedder_of=embedder_of)


def test_processes_starting_together_measure_once(tmp_path: Path) -> None:
    path, log = tmp_path / "engines" / "call-sizes" / "model.txt", tmp_path / "measured.log"
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        sizes = pool.starmap(_measure_in_a_process, [(path, log)] * 2)
    assert sizes[0] == sizes[1] == int(path.read_text())
    assert log.read_text() == "measured\n"
