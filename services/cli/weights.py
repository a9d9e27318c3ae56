"""`lookalike weights install|list`: backbone weight files and where they resolve from."""

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


def weights_list() -> None:
    """Each backbone and the first place its weights resolve from (or that none do)."""
    table = Table("backbone", "dim", "weights", "found at")
    torch_home = get_settings().torch_home
    for spec in list_backbones():
        found = [p for p in weight_candidates(spec, explicit=None, torch_home=torch_home)
                 if p.is_file()]
        table.add_row(spec.name, str(spec.dim), spec.weights.name,
                      str(found[0]) if found else "[red]missing[/red]")
    console.print(table)
