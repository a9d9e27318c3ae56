"""A training job's curves as a PNG: loss and validation mAP per epoch, one chart each."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from lookalike.retrieval import atomic


def draw_curves(history: Sequence[dict], path: Path, *, title: str,
                baseline_map: float | None = None, metric: str = "validation mAP") -> Path:
    """Write the loss and validation-mAP curves of `history` (dicts with epoch, loss,
    val_map) to `path`; the mAP before training is drawn as a dashed line. `metric` names
    what val_map holds (a text model's: validation accuracy)."""
    import matplotlib  # noqa: PLC0415 - slow to import; only jobs that train need it

    matplotlib.use("Agg")
    from matplotlib import pyplot  # noqa: PLC0415
    from matplotlib.ticker import MaxNLocator  # noqa: PLC0415

    epochs = [int(row["epoch"]) for row in history]
    figure, (loss_axes, map_axes) = pyplot.subplots(1, 2, figsize=(9, 3.6))
    loss_axes.plot(epochs, [row["loss"] for row in history], marker="o")
    loss_axes.set(xlabel="epoch", ylabel="training loss", title="loss")
    scored = [(e, row["val_map"]) for e, row in zip(epochs, history, strict=True)
              if row.get("val_map") is not None]
    if scored:
        map_axes.plot(*zip(*scored, strict=True), marker="o", color="tab:green", label="after")
    if baseline_map is not None:
        map_axes.axhline(baseline_map, linestyle="--", color="grey", label="before training")
    map_axes.set(xlabel="epoch", ylabel=metric, title=metric, ylim=(0, 1))
    map_axes.legend(loc="lower right")
    for axes in (loss_axes, map_axes):
        axes.grid(alpha=0.3)
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    figure.suptitle(title)
    figure.tight_layout()
    atomic.write_atomic(path, lambda handle: figure.savefig(handle, format="png", dpi=100))
    pyplot.close(figure)
    return path
