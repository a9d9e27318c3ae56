"""The zoo's plot: retrieval quality per network, and quality against cost per image."""

from __future__ import annotations

from pathlib import Path

from lookalike.retrieval import atomic
from lookalike.services.bench.zoo import ZooResult


def draw_zoo(result: ZooResult, path: Path) -> Path:
    """Write a PNG: mAP and P@10 bars per row, and mAP against multiply-adds (log scale)."""
    import matplotlib  # noqa: PLC0415 - slow to import; only this command draws

    matplotlib.use("Agg")
    from matplotlib import pyplot  # noqa: PLC0415

    rows = result.rows
    names = [row.network for row in rows]
    figure, (bars, scatter) = pyplot.subplots(1, 2, figsize=(13, 4.8))
    positions = range(len(rows))
    bars.bar([p - 0.2 for p in positions], [row.map for row in rows], 0.4, label="mAP")
    bars.bar([p + 0.2 for p in positions], [row.p10 for row in rows], 0.4, label="P@10")
    bars.set_xticks(list(positions), names, rotation=40, ha="right", fontsize="small")
    bars.set(ylim=(0, 1), title=f"fashion-mnist: {result.queries} queries vs "
             f"{result.gallery} images")
    bars.legend(loc="upper right")
    costed = [row for row in rows if row.multiply_adds > 0]
    scatter.scatter([row.multiply_adds for row in costed], [row.map for row in costed])
    for row in costed:
        scatter.annotate(row.network, (row.multiply_adds, row.map), fontsize="small",
                         xytext=(4, 4), textcoords="offset points")
    scatter.set(xscale="log", xlabel="multiply-adds per image (descriptor)", ylabel="mAP",
                title="quality against cost")
    for axes in (bars, scatter):
        axes.grid(alpha=0.3)
    budget = (f"{result.seconds:g} s" if result.seconds is not None
              else f"{result.epochs} epoch(s)") + " of training per network"
    figure.suptitle(f"the textbook's networks trained from scratch, {budget}")
    figure.tight_layout()
    atomic.write_atomic(path, lambda handle: figure.savefig(handle, format="png", dpi=100))
    pyplot.close(figure)
    return path
