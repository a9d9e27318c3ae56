"""`lookalike bench zoo` on a tiny budget: every row is there, with figures in range, in the
table, the JSON and the plot (the figures themselves are the command's to print)."""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console

from lookalike.retrieval.training.budget import Budget
from lookalike.services.bench.zoo import run_zoo
from lookalike.services.bench.zoo_plot import draw_zoo
from lookalike.services.cli.bench import zoo_table


def test_a_tiny_zoo_has_every_row(tmp_path: Path) -> None:
    seen: list[str] = []
    result = run_zoo(networks=["lenet5", "zfnet_small"], budget=Budget(seconds=2),
                     queries=5, train_images=300, torch_home=tmp_path / "no-cache",
                     on_row=lambda row: seen.append(row.network))
    names = ["lenet5", "zfnet_small", "mobilenet_v2", "mobilenet_v2 + Lw", "raw pixels"]
    assert [row.network for row in result.rows] == seen == names
    assert (result.queries, result.gallery, result.train_images) == (5, 50, 300)
    for row in result.rows:
        assert 0 < row.map <= 1 and 0 <= row.p10 <= 1 and row.images_per_s > 0, row
    trained = result.rows[:2]
    for row in trained:
        assert row.accuracy is not None and row.train_seconds >= 2 and row.epochs > 0, row
        assert row.multiply_adds > 0 and row.params > 0, row
    assert trained[0].multiply_adds == 415_680  # LeNet-5's trunk, as tests/retrieval counts it
    assert result.rows[3].dim == 32 and result.rows[2].dim == 1280
    table = zoo_table(result)
    assert list(table.columns[0].cells) == names
    console = Console(width=300, record=True)
    console.print(table)
    assert "raw pixels" in console.export_text()
    assert json.loads(json.dumps(result.to_public()))["rows"][4]["network"] == "raw pixels"
    plot = draw_zoo(result, tmp_path / "zoo.png")
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
