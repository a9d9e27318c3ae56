"""`lookalike video compare`: the 3-D convolution against frame averaging, as one table."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from lookalike.services.config import get_settings
from lookalike.services.video.compare import compare

console = Console()


def video_compare(
    directory: Annotated[Path, typer.Argument(help="clips from `lookalike sample clips`")],
    epochs: Annotated[int, typer.Option(help="training epochs of each model")] = 8,
    seed: Annotated[int, typer.Option(help="weights and shuffling seed")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON list on stdout")] = False,
) -> None:
    """Train both video classifiers on the motion and appearance tasks; print held-out
    accuracy, direction accuracy within direction pairs, size, training time and speed."""
    rows = compare(get_settings(), directory, epochs=epochs, seed=seed)
    if as_json:
        print(json.dumps([row.__dict__ for row in rows]))
        return
    table = Table("task", "model", "accuracy", "direction (pairs)", "parameters",
                  "train clips", "train s", "clips/s")
    for row in rows:
        direction = "" if row.direction is None else f"{row.direction:.3f}"
        table.add_row(row.task, row.model, f"{row.accuracy:.3f}", direction,
                      f"{row.parameters:,}", str(row.trained), f"{row.train_s:.1f}",
                      f"{row.clips_per_s:.0f}")
    console.print(table)
