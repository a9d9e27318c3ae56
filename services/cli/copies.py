"""`lookalike evaluate --benchmark copies`: per-edit mAP and recall@1, micro-AP, calibration."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from lookalike.services.config import get_settings
from lookalike.services.evaluation.calibration import evaluate_copies
from lookalike.services.evaluation.copies import CopyEvaluation
from lookalike.services.evaluation.disc21 import evaluate_disc21
from lookalike.services.setup import open_runtime

COPIES = "copies"
DISC21 = "disc21"
console = Console()


def _table(result: CopyEvaluation) -> Table:
    """One row per edit type, then the totals."""
    title = (f"copies on {result.space}{' + verify' if result.verify else ''}: "
             f"{result.queries} queries vs {result.gallery} gallery images")
    table = Table("edit", "queries", "mAP", "recall@1", title=title)
    for name, scores in result.per_edit.items():
        table.add_row(name, str(scores.queries), f"{scores.map:.4f}",
                      f"{scores.recall_at_1:.4f}")
    table.add_row("all", str(result.queries), f"{result.map:.4f}", f"{result.recall_at_1:.4f}",
                  style="bold")
    return table


def _print(result: CopyEvaluation) -> None:
    console.print(_table(result))
    console.print(f"micro-AP over pooled top-{result.top_n} pairs: {result.micro_ap:.4f}; "
                  f"embed {result.embed_seconds:.1f} s, search"
                  f"{' + verify' if result.verify else ''} {result.search_seconds:.1f} s")
    if result.calibration is not None:
        _print_calibration(result)
    for note in result.notes:
        console.print(f"[yellow]note:[/] {note}")


def _print_calibration(result: CopyEvaluation) -> None:
    """The fitted rule, what it keeps in and out of sample, and what it called wrongly."""
    c = result.calibration or {}
    console.print(f"calibrated for precision {c['target_precision']}: inliers >= "
                  f"{c['inlier_threshold']}, or the top result's score >= the "
                  f"{c['margin_rank']}th best's + {c['margin_threshold']}: precision "
                  f"{c['precision_verified']}, recall {c['recall_verified']} on the pairs "
                  f"fitted on; held out (two folds by photo): precision "
                  f"{c['held_out_precision']}, recall {c['held_out_recall']}; score alone "
                  f"(duplicates) >= {c['score_threshold']}: precision {c['precision']}, recall "
                  f"{c['recall']}; stored on space {result.space}")
    wrong = result.held_out_false_positives
    console.print(f"held-out false positives: {len(wrong)}")
    for w in wrong:
        console.print(f"  {w['query']} -> {w['result']}: score {w['score']}, inliers "
                      f"{w['inliers']}, margin {w['margin']}")


def disc21_command(spaces: list[str | None], *, data: Path | None, limit: int | None,
                   as_json: bool) -> None:
    """Score each space on DISC21-format data and print (or --json) the figures."""
    if data is None:
        raise typer.BadParameter("--benchmark disc21 reads queries/, references/ and the "
                                 "ground-truth CSV from a folder: give --data DIR")
    with open_runtime(get_settings()) as runtime:
        results = [evaluate_disc21(runtime, space_name=name, data=data, limit=limit)
                   for name in spaces]
    if as_json:
        print(json.dumps([r.to_public() for r in results]))
        return
    for result in results:
        console.print(f"disc21 on {result.space}: {result.queries} queries vs "
                      f"{result.gallery} references: mAP {result.map:.4f}, recall@1 "
                      f"{result.recall_at_1:.4f}, micro-AP {result.micro_ap:.4f}")


def copies_command(spaces: list[str | None], *, limit: int | None, verify: bool,
                   calibrate: bool, target_precision: float, as_json: bool,
                   top_n: int | None = None) -> None:
    """Run the copies benchmark on each space and print (or --json) the figures."""
    with open_runtime(get_settings()) as runtime:
        results = [evaluate_copies(runtime, space_name=name, verify=verify, calibrate=calibrate,
                                   target_precision=target_precision,
                                   distractors=5000 if limit is None else limit, top_n=top_n)
                   for name in spaces]
    if as_json:
        print(json.dumps([r.to_public() for r in results]))
        return
    for result in results:
        _print(result)
