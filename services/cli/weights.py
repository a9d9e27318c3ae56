"""`lookalike weights install|fetch|list`: backbone weight files and where they resolve from."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from lookalike.retrieval.models.registry import (
    get_backbone,
    install_weights,
    list_backbones,
    weight_candidates,
)
from lookalike.services.config import get_settings

console = Console()


def weights_install(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False)],
    backbone: Annotated[str, typer.Option(help="registry name, e.g. resnet50")],
) -> None:
    """Put a weight file where the registry finds it ($TORCH_HOME/hub/checkpoints)."""
    target = install_weights(file, spec=get_backbone(backbone),
                             torch_home=get_settings().torch_home)
    console.print(f"installed {file} for {backbone} at {target}")


def weights_fetch(
    backbone: Annotated[str, typer.Argument(help="registry name, e.g. resnet50")],
) -> None:
    """Download a backbone's ImageNet weights with torchvision (progress bar, sha256 check)
    into $TORCH_HOME/hub/checkpoints; offline, name `weights install FILE` instead."""
    from lookalike.services.weights.fetch import fetch_weights  # noqa: PLC0415 - torchvision

    target = fetch_weights(get_backbone(backbone), torch_home=get_settings().torch_home)
    console.print(f"{backbone} weights at {target}")


def weights_list() -> None:
    """Each backbone and the first place its weights resolve from (or that none do)."""
    table = Table("backbone", "input", "dim", "weights", "found at")
    torch_home = get_settings().torch_home
    for spec in list_backbones():
        found = [p for p in weight_candidates(spec, explicit=None, torch_home=torch_home)
                 if p.is_file()]
        where = (str(found[0]) if found else "[red]missing[/red]: `lookalike weights fetch "
                 f"{spec.name}`" if spec.weights.pretrained else "none exist: train it")
        table.add_row(spec.name, str(spec.weights.input_size), str(spec.dim), spec.weights.name,
                      where)
    console.print(table)
