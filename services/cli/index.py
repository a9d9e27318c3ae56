"""`lookalike index build|rebuild|verify|snapshot` and `lookalike bench index`: each space's FAISS
index chosen by target recall, rebuilt from the catalog, checked against it and snapshotted."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from lookalike.services.bench.backends import BackendFigures, bench_backend
from lookalike.services.config import get_settings
from lookalike.services.index.build import (
    BuildReport,
    bench_index,
    build_space_index,
    parse_bytes,
)
from lookalike.services.index.follower import FOLLOW_BATCH, WRITE_CHUNK
from lookalike.services.index.following import follow_forever, follow_once
from lookalike.services.index.milvus_lite_server import serve_milvus_lite
from lookalike.services.index.snapshots import SnapshotReport, rebuild_all, snapshot_all
from lookalike.services.index.verify import verify_all
from lookalike.services.setup import open_runtime

console = Console()
TargetOption = Annotated[float, typer.Option(help="recall@10 against exact search to reach")]
MemoryOption = Annotated[str, typer.Option(help="memory budget of the index, e.g. 4GB")]
JsonOption = Annotated[bool, typer.Option("--json", help="one JSON object on stdout")]


def _print(report: BuildReport, target: float) -> None:
    choice = report.choice
    for trial in choice.tried:
        console.print(f"  tried {trial.factory:<28} {json.dumps(trial.params):<20} "
                      f"recall@10 {trial.recall:.4f}")
    verdict = "meets" if choice.meets_target else "[red]misses[/red]"
    console.print(
        f"{report.space}: {report.vectors} vectors x {report.dim}, {report.held_out} held-out "
        f"queries\n  chose {choice.factory} {json.dumps(choice.params)}: recall@10 "
        f"{choice.recall:.4f} ({verdict} the target {target}), {choice.qps:,.0f} queries/s "
        f"batched, {choice.bytes_per_vector:.1f} bytes/vector "
        f"({choice.bytes_per_vector * report.vectors / 2**30:.2f} GiB), trained and filled in "
        f"{choice.train_seconds:.1f} s; {report.seconds:.1f} s in all")
    if report.snapshot is not None:
        console.print(f"  snapshot {report.snapshot.file}")
    if report.note is not None:
        console.print(f"  {report.note}")


def index_build(
    space: Annotated[str | None, typer.Option(help="space (default: the default space)")] = None,
    target_recall: TargetOption = 0.95,
    max_memory: MemoryOption = "4GB",
    as_json: JsonOption = False,
) -> None:
    """Choose Flat / HNSW / IVF-Flat / IVF-PQ for a space, tune it on held-out queries, build
    it from the catalog and make it the space's index (for a Milvus space: FLAT, HNSW,
    IVF_FLAT, IVF_SQ8, IVF_PQ, DISKANN, as far as the server has them)."""
    with open_runtime(get_settings()) as runtime:
        report = build_space_index(runtime, space_name=space, target_recall=target_recall,
                                   max_bytes=parse_bytes(max_memory))
    if as_json:
        print(json.dumps(report.to_public()))
        return
    _print(report, target_recall)


def bench_index_command(
    vectors: Annotated[int, typer.Option(help="synthetic clustered vectors")] = 100_000,
    dim: Annotated[int, typer.Option(help="their dimension")] = 512,
    queries: Annotated[int, typer.Option(help="held-out queries")] = 1000,
    clusters: Annotated[int, typer.Option(help="cluster centres of the synthetic data")] = 1000,
    spread: Annotated[float, typer.Option(help="noise around each centre (1 = as far as the "
                                          "centre from the origin)")] = 1.0,
    target_recall: TargetOption = 0.95,
    max_memory: MemoryOption = "4GB",
    as_json: JsonOption = False,
    backend: Annotated[str | None, typer.Option(
        help="instead of the choice, measure one backend (faiss or milvus: "
        "LOOKALIKE_MILVUS_URI, else a scratch milvus-lite) on the same vectors")] = None,
    index: Annotated[str, typer.Option(help="with --backend: flat (exact), ivf (sqrt(n) lists, "
                                     "32 probed) or hnsw (M=16, ef 64; not milvus-lite)")
                     ] = "ivf",
) -> None:
    """The index choice on synthetic clustered data: recall@10, queries/s, bytes/vector (with
    --backend: one backend's recall@10, p50/p99, batched queries/s and memory)."""
    if backend is not None:
        figures = bench_backend(backend=backend, vectors=vectors, dim=dim, queries=queries,
                                index=index, milvus_uri=get_settings().milvus_uri,
                                clusters=clusters, spread=spread)
        if as_json:
            print(json.dumps(figures.to_public()))
            return
        _print_backend(figures)
        return
    report = bench_index(vectors=vectors, dim=dim, queries=queries, target_recall=target_recall,
                         max_bytes=parse_bytes(max_memory), clusters=clusters, spread=spread)
    if as_json:
        print(json.dumps(report.to_public()))
        return
    _print(report, target_recall)


def _print_backend(f: BackendFigures) -> None:
    console.print(
        f"{f.backend} {f.index} ({f.where}): {f.vectors:,} vectors x {f.dim}, {f.queries} "
        f"queries\n  built in {f.build_s:.1f} s; recall@10 {f.recall_at_10:.4f}; single query "
        f"p50 {f.p50_ms:.2f} ms, p99 {f.p99_ms:.2f} ms; batched {f.batched_qps:,.0f} queries/s; "
        f"process memory +{f.rss_gain_mib:,.0f} MiB for the index (peak RSS "
        f"{f.peak_rss_mib:,.0f} MiB)"
        + ("" if f.engine_rss_mib is None else f"; milvus-lite engine {f.engine_rss_mib:,.0f} MiB"),
        highlight=False)


SpaceOption = Annotated[str | None, typer.Option(help="one space (default: every space)")]


def _print_reports(verb: str, reports: list[SnapshotReport]) -> None:
    for report in reports:
        console.print(f"{verb} {report.space}: {report.vectors} vectors at catalog seq "
                      f"{report.watermark} -> {report.file}")


def index_rebuild(
    space: SpaceOption = None,
    factory: Annotated[str | None, typer.Option(help="FAISS factory string, e.g. HNSW32")] = None,
) -> None:
    """Recreate indexes from the catalog alone (the source of truth) and snapshot them."""
    with open_runtime(get_settings()) as runtime:
        _print_reports("rebuilt", rebuild_all(runtime, space_name=space, factory=factory))


def index_verify() -> None:
    """Compare each index with the catalog: missing, extra and stale ids; exit 1 on a mismatch."""
    with open_runtime(get_settings()) as runtime:
        reports = verify_all(runtime)
    for report in reports:
        console.print(f"{report.space}: {report.vectors} vectors; {report.advice()}",
                      highlight=False)
    if not all(report.ok for report in reports):
        raise typer.Exit(1)


def index_snapshot(space: SpaceOption = None) -> None:
    """Write each index, caught up with the catalog, as a new snapshot (atomically)."""
    with open_runtime(get_settings()) as runtime:
        _print_reports("snapshot", snapshot_all(runtime, space_name=space))


def index_follow(
    space: SpaceOption = None,
    once: Annotated[bool, typer.Option("--once", help="apply what is pending, then stop")
                    ] = False,
    interval: Annotated[float, typer.Option(help="seconds between polls of the change log")
                        ] = 0.5,
    batch: Annotated[int, typer.Option(help="changes per batch (one watermark commit each)")
                     ] = FOLLOW_BATCH,
    chunk: Annotated[int, typer.Option(help="rows per Milvus write within a batch")
                     ] = WRITE_CHUNK,
) -> None:
    """Apply the catalog's change log to every Milvus space's collection, polling until
    stopped (or --once); its watermark is committed in the catalog after each batch."""
    with open_runtime(get_settings()) as runtime:
        if once:
            applied = follow_once(runtime, space_name=space, batch=batch, chunk=chunk)
            console.print(f"applied {applied} changes")
            return
        follow_forever(runtime, space_name=space, interval=interval, batch=batch, chunk=chunk)


def index_serve_milvus(
    data_dir: Annotated[Path, typer.Option(help="folder of the collections' files")],
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="gRPC port (LOOKALIKE_MILVUS_URI=http://host:port)")
                    ] = 19530,
) -> None:
    """Serve milvus-lite over gRPC until stopped, so that the processes on this machine share
    one Milvus (API servers, workers, the follower: a .db path is held by one process only)."""
    console.print(f"milvus-lite on http://{host}:{port} over {data_dir}; Ctrl-C stops it",
                  highlight=False)
    serve_milvus_lite(data_dir, host, port, threading.Event())
