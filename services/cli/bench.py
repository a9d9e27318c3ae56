"""`lookalike bench ingest|search`: speed figures printed by commands, never by tests."""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Annotated

import torch
import typer
from rich.console import Console
from rich.table import Table

from lookalike.services.bench.catalog import seed_sample, throwaway_catalog
from lookalike.services.bench.chaos import ChaosReport, run_chaos
from lookalike.services.bench.ingest import IngestBench, run_forward_bench, run_ingest_bench
from lookalike.services.bench.load import run_load_bench
from lookalike.services.bench.search import run_search_bench
from lookalike.services.bench.speed import run_speed_bench
from lookalike.services.bench.startup import run_startup_bench
from lookalike.services.bench.zoo import DEFAULT_NETWORKS
from lookalike.services.config import cpu_model, get_settings, usable_cpus

console = Console()
JsonOption = Annotated[bool, typer.Option("--json", help="one JSON object on stdout")]
PostgresOption = Annotated[str | None, typer.Option(
    help="admin URL of a PostgreSQL server, e.g. postgresql://postgres@127.0.0.1:5432/postgres: "
         "the run uses a throw-away database created there and dropped after it")]


def machine() -> dict:
    return {"cpu": cpu_model(), "cores": usable_cpus(),
            "torch_threads": torch.get_num_threads(), "python": platform.python_version(),
            "torch": torch.__version__}


def bench_ingest(
    images: Annotated[int, typer.Option(help="camera-sized JPEGs to ingest")] = 1024,
    naive_images: Annotated[int, typer.Option(help="images for the one-at-a-time loop")] = 128,
    as_json: JsonOption = False,
) -> None:
    """Model-only vs end-to-end (files to catalog and index) vs naive per-image throughput."""
    result = run_ingest_bench(get_settings(), images=images, naive_images=naive_images)
    if as_json:
        print(json.dumps({**result.to_public(), "machine": machine()}))
        return
    console.print(
        f"{result.images} JPEGs 800x600, batch {result.batch_size} "
        f"(model calls of {result.forward_batch}), "
        f"{result.decode_workers} workers "
        f"({'decoding and embedding' if result.embed_in_workers else 'decoding'}), "
        f"{result.torch_threads} torch threads, "
        f"{'frozen graph' if result.frozen_graph else 'eager model'}\n"
        f"  model only (pre-decoded tensors): {result.model_only_per_s:8.1f} images/s"
        f"{_all_cores(result)}\n"
        f"  end to end (files -> catalog+index): {result.end_to_end_per_s:8.1f} images/s"
        f"  = {result.e2e_over_model:.2f}x model only\n"
        f"  naive loop ({result.naive_images} images, one at a time): "
        f"{result.naive_per_s:8.1f} images/s; end to end = {result.e2e_over_naive:.2f}x naive")
    cpu = result.cpu
    console.print(
        f"  CPU ms per image end to end: the calling thread {cpu.calling_thread_ms:.2f} (model "
        f"only: {cpu.model_only_ms:.2f}), workers {cpu.decode_workers_ms:.2f}, other "
        f"threads (catalog writer) {cpu.other_threads_ms:.2f}; {cpu.total_ms:.2f} in all, "
        f"{cpu.cores_busy:.2f} of {usable_cpus()} cores busy\n"
        f"  one upload at a time (the POST /v1/images path, in process): p50 "
        f"{result.upload_p50_ms:.2f} ms")


def _all_cores(result: IngestBench) -> str:
    """The model-only figure on every core, and end to end against it, when measured."""
    if result.model_all_cores_per_s is None or result.e2e_over_model_all_cores is None:
        return "; on every core: not measured (forked workers cannot run this model here)"
    return (f"; on every core, one worker each: {result.model_all_cores_per_s:.1f} "
            f"(end to end = {result.e2e_over_model_all_cores:.2f}x it)")


def bench_forward(
    sizes: Annotated[str, typer.Option(help="images per model call to try, comma-separated")
                     ] = "1,2,4,8,16,32",
    images: Annotated[int, typer.Option(help="decoded photos embedded per round")] = 64,
    as_json: JsonOption = False,
) -> None:
    """The default space's model speed for each number of images per call (forward_batch)."""
    result = run_forward_bench(get_settings(), sizes=[int(s) for s in sizes.split(",")],
                               images=images)
    if as_json:
        print(json.dumps({"images": result.batch_size, "images_per_s": result.images_per_s,
                          "chosen": result.chosen, "machine": machine()}))
        return
    best = max(result.images_per_s, key=result.images_per_s.__getitem__)
    console.print(f"{result.batch_size} decoded photos per round, best of 3; the space's "
                  f"model runs calls of {result.chosen} here")
    for size, rate in result.images_per_s.items():
        mark = "  <- fastest" if size == best else ""
        console.print(f"  {size:3d} images per call: {rate:7.1f} images/s{mark}")


def bench_search(
    queries: Annotated[int, typer.Option(help="search-by-id requests")] = 500,
    k: Annotated[int, typer.Option("-k")] = 10,
    as_json: JsonOption = False,
) -> None:
    """p50/p99 of search-by-id over HTTP (a real `lookalike serve`) next to raw FAISS time."""
    result = run_search_bench(get_settings(), queries=queries, k=k)
    if as_json:
        print(json.dumps({**result.to_public(), "machine": machine()}))
        return
    console.print(
        f"{result.queries} search-by-id queries, k={result.k}, {result.vectors} vectors\n"
        f"  HTTP  p50 {result.http_p50_ms:7.2f} ms   p99 {result.http_p99_ms:7.2f} ms\n"
        f"  FAISS p50 {result.faiss_p50_ms:7.3f} ms   p99 {result.faiss_p99_ms:7.3f} ms")


def bench_load(
    clients: Annotated[int, typer.Option(help="concurrent clients")] = 32,
    seconds: Annotated[float, typer.Option(help="how long the clients search")] = 60.0,
    ingest_images: Annotated[int, typer.Option(help="JPEGs ingested meanwhile")] = 2000,
    postgres: PostgresOption = None,
    sample_per_class: Annotated[int, typer.Option(
        help="with --postgres: Fashion-MNIST images per class (+ the bundled photos) "
             "ingested into the throw-away database before the run")] = 300,
    broker: Annotated[str | None, typer.Option(
        help="Celery broker URL, e.g. redis://127.0.0.1:6379/0 (default: LOOKALIKE_BROKER_URL): "
             "a `lookalike worker` ingests, taking a job sent through the API; without a "
             "broker a `lookalike ingest` process does")] = None,
    as_json: JsonOption = False,
) -> None:
    """Throughput and p50/p95/p99 per route of two API processes under concurrent searches
    (by id and by upload) while images are ingested (by a Celery worker with a broker, else
    by an ingest process); then checks new images are found. Runs on the configured catalog,
    or with --postgres on a throw-away PostgreSQL database filled with the sample collection
    first."""
    base = get_settings()
    if broker is not None:
        base = base.model_copy(update={"broker_url": broker})
    if postgres is None:
        result = run_load_bench(base, clients=clients, seconds=seconds,
                                ingest_images=ingest_images)
    else:
        with throwaway_catalog(base, postgres=postgres) as settings:
            seed_sample(settings, fashion_per_class=sample_per_class)
            result = run_load_bench(settings, clients=clients, seconds=seconds,
                                    ingest_images=ingest_images)
    if as_json:
        print(json.dumps({**result.to_public(), "machine": machine()}))
        return
    job = f" (job {result.job_id})" if result.job_id is not None else ""
    console.print(f"{result.clients} clients, {result.seconds:.0f} s, {result.servers} API "
                  f"processes, {result.ingested_during} images ingested meanwhile by "
                  f"{result.ingester}{job}")
    for route in result.routes:
        console.print(
            f"  {route.route:17} {route.requests:6d} requests {route.per_s:7.1f}/s   "
            f"p50 {route.p50_ms:7.1f} ms  p95 {route.p95_ms:7.1f} ms  p99 {route.p99_ms:7.1f} ms"
            f"   5xx {route.errors_5xx}  4xx {route.errors_other}")
    console.print(f"  images added during the run found first by id on both servers: "
                  f"{result.new_images_found_first}/{result.new_images_checked}")


def bench_startup(
    vectors: Annotated[int, typer.Option(help="random unit vectors in the space")] = 1_000_000,
    dim: Annotated[int, typer.Option(help="their dimension")] = 1280,
    changes: Annotated[int, typer.Option(help="vectors added after the snapshot")] = 10_000,
    postgres: PostgresOption = None,
    server: Annotated[bool, typer.Option(help="also time real `lookalike serve` starts")] = True,
    as_json: JsonOption = False,
) -> None:
    """Seconds until a fresh process serves searches on N vectors: from the newest snapshot
    plus the changes after it, and rebuilt from the catalog alone (throw-away catalog)."""
    result = run_startup_bench(get_settings(), vectors=vectors, dim=dim, changes=changes,
                               postgres=postgres, server=server)
    if as_json:
        print(json.dumps({**result.to_public(), "machine": machine()}))
        return
    console.print(
        f"{result.vectors} vectors of dim {result.dim} ({result.database}, Flat); filled in "
        f"{result.fill_s:.1f} s, snapshot of {result.snapshot_mb:.0f} MB written in "
        f"{result.snapshot_write_s:.1f} s, then {result.changes_after_snapshot} more vectors\n"
        f"  from the snapshot + change log: replica open {result.snapshot_open_s:7.2f} s, "
        f"first search {result.snapshot_first_search_ms:7.1f} ms\n"
        f"  no snapshot (catalog rebuild):  replica open {result.rebuild_open_s:7.2f} s, "
        f"first search {result.rebuild_first_search_ms:7.1f} ms")
    if result.server_snapshot_first_search_s is not None:
        console.print(
            f"  `lookalike serve` start to first search answer: "
            f"{result.server_snapshot_first_search_s:.2f} s with the snapshot, "
            f"{result.server_rebuild_first_search_s:.2f} s without")


def bench_chaos(
    rounds: Annotated[int, typer.Option(help="rounds of ingest + one SIGKILL + restart")] = 5,
    images: Annotated[int, typer.Option(help="new images sent per round through the job "
                                            "(half as many more are uploaded)")] = 6,
    postgres: PostgresOption = None,
    broker: Annotated[str | None, typer.Option(
        help="Celery broker URL, e.g. redis://127.0.0.1:6379/0 (default: "
             "LOOKALIKE_BROKER_URL)")] = None,
    seed: Annotated[int | None, typer.Option(
        help="seed of the images and the kill schedule (printed; default: random)")] = None,
    as_json: JsonOption = False,
) -> None:
    """A crash loop: ingest through a worker and an API process, SIGKILL one at random, restart
    it, and check nothing is missing, phantom or doubled; exit 1 on a finding."""
    base = get_settings()
    if broker is not None:
        base = base.model_copy(update={"broker_url": broker})
    with throwaway_catalog(base, postgres=postgres) as settings:
        report, problems = run_chaos(settings, rounds=rounds, images=images, seed=seed)
    if as_json:
        print(json.dumps({**report.to_public(), "problems": problems, "machine": machine()}))
    else:
        _print_chaos(report, problems, database="PostgreSQL" if postgres else "SQLite")
    if problems:
        raise typer.Exit(1)


def _print_chaos(report: ChaosReport, problems: list[str], *, database: str) -> None:
    kills = ", ".join(f"{count} {victim}" for victim, count in report.kills.items())
    console.print(
        f"{report.survived}/{report.rounds} rounds survived ({database}, {report.seconds:.0f} s, "
        f"seed {report.seed}); SIGKILLs: {kills}\n"
        f"  sent {report.images_sent} distinct images ({report.jobs} worker jobs, "
        f"{report.uploads} API uploads; {report.upload_retries} upload attempts met a dead "
        f"API and were tried again), {report.batches_redelivered} batches run again after a kill\n"
        f"  catalogued {report.catalogued}: missing {report.missing}, phantom "
        f"{report.phantom}, duplicated vectors {report.duplicated_vectors}\n"
        f"  jobs: {report.jobs_succeeded}/{report.jobs} succeeded, {report.unfinished_jobs} "
        f"unfinished; index verify: {len(report.index_problems)} problems; storage verify: "
        f"{len(report.storage_problems)} problems")
    for problem in problems:
        console.print(f"  [red]problem:[/red] {problem}", highlight=False)


def bench_speed(
    seconds: Annotated[float, typer.Option(help="seconds per engine and for the 16 clients")
                       ] = 6.0,
    sample_per_class: Annotated[int, typer.Option(
        help="Fashion-MNIST images per class (+ the bundled photos) in the served catalog")
                                ] = 300,
    queries: Annotated[int, typer.Option(help="sequential searches by id and by upload")] = 200,
    clients: Annotated[int, typer.Option(help="concurrent clients searching by upload")] = 16,
    serve: Annotated[bool, typer.Option(help="also time a real `lookalike serve`")] = True,
    workers: Annotated[int | None, typer.Option(
        min=1, help="server processes (`serve --workers`); default: one per usable core")
                       ] = None,
    as_json: JsonOption = False,
) -> None:
    """Engines' images/s and the search paths' latencies, as ratios from one run."""
    result = run_speed_bench(get_settings(), seconds=seconds, sample_per_class=sample_per_class,
                             queries=queries, clients=clients, serve=serve,
                             workers=workers or usable_cpus())
    if as_json:
        print(json.dumps({**result.to_public(), "machine": machine()}))
        return
    console.print(f"engines, 1 thread, calls of 4 images ({cpu_model()}, {usable_cpus()} cores)")
    for name, rate in result.engines_per_s.items():
        dynamic = result.dynamic_shape_per_s.get(name)
        cosine = result.engine_cosine.get(name)
        console.print(f"  {name:18} {rate:7.1f} images/s" + (
            "" if dynamic is None else f" ({dynamic:.1f} with its dynamic-shape model)") + (
            "" if cosine is None else f", lowest cosine to eager fp32 {cosine:.5f}"))
    space_ratio = result.space_engine_over_torchscript_bf16
    console.print(f"  best ({result.best_engine}) = {result.best_over_torchscript_bf16:.2f}x "
                  "the TorchScript bf16 path" + (
                      "" if space_ratio is None else
                      f"; the default space's ({result.space_engine}) {space_ratio:.2f}x"))
    console.print("  decode ms per image: " + ", ".join(
        f"{k} {v:.1f}" for k, v in result.decode_ms.items())
        + "; draft vs full decode, lowest cosine: " + ", ".join(
            f"{k} {v:.5f}" for k, v in result.draft_cosine.items()))
    if serve:
        console.print(
            f"served catalog of {result.catalog_images} images, space engine "
            f"{result.space_engine}, {result.workers} server processes\n"
            f"  upload, 1 client: p50 {result.upload_p50_ms:.1f} ms = "
            f"{result.upload_p50_over_decode_forward:.2f}x decode + forward "
            f"({result.decode_and_forward_ms:.1f} ms); the server's took_ms p50 "
            f"{result.upload_took_p50_ms:.1f} ms (HTTP and the socket: the rest); in it, "
            f"FAISS right after the forward pass p50 {result.faiss_after_forward_p50_ms:.3f} "
            f"ms (alone: {result.faiss_p50_ms:.3f})\n"
            f"  upload, {result.clients} clients: {result.upload_many_per_s:.1f} requests/s = "
            f"{result.upload_many_over_best_engine:.2f}x the best engine's images/s, "
            f"{result.upload_many_over_space_engine:.2f}x the space engine's (alone, timed "
            f"between the clients' blocks: {result.best_engine_beside_clients_per_s:.1f} and "
            f"{result.space_engine_beside_clients_per_s:.1f} images/s); server CPU "
            f"{result.upload_many_server_cpu_ms:.2f} ms per request, the busiest process's "
            f"share of it in each block: "
            f"{', '.join(f'{share:.2f}' for share in result.upload_many_busiest_share)} "
            f"(requests/s: "
            f"{', '.join(f'{rate:.1f}' for rate in result.upload_many_block_per_s)})\n"
            f"  by id: p50 {result.by_id_p50_ms:.2f} ms = FAISS p50 {result.faiss_p50_ms:.3f} "
            f"ms + {result.by_id_p50_minus_faiss_ms:.2f} ms")


def bench_zoo(
    networks: Annotated[str, typer.Option(help="registry names, comma-separated")
                        ] = ",".join(DEFAULT_NETWORKS),
    seconds: Annotated[float, typer.Option(help="training time per network")] = 300.0,
    epochs: Annotated[int | None, typer.Option(help="train this many epochs instead of seconds")
                      ] = None,
    queries: Annotated[int, typer.Option(help="test queries; the gallery is 10x as many "
                                              "training images")] = 1000,
    train_images: Annotated[int | None, typer.Option(help="learn from the first N training "
                                                          "images (default all 60,000)")] = None,
    reference: Annotated[bool, typer.Option(help="add the pretrained MobileNetV2 rows")] = True,
    plot: Annotated[Path, typer.Option(help="where to write the plot PNG")] = Path("zoo.png"),
    as_json: JsonOption = False,
) -> None:
    """The textbook's networks trained from scratch on Fashion-MNIST with one budget each:
    mAP, P@10, accuracy, parameters, multiply-adds, images/s; one table and one plot."""
    from lookalike.retrieval.training.budget import Budget  # noqa: PLC0415
    from lookalike.services.bench.zoo import run_zoo  # noqa: PLC0415
    from lookalike.services.bench.zoo_plot import draw_zoo  # noqa: PLC0415

    budget = Budget(seconds=None if epochs else seconds, epochs=epochs)
    progress = Console(stderr=True)
    result = run_zoo(networks=[n for n in networks.split(",") if n], budget=budget,
                     queries=queries, train_images=train_images, reference=reference,
                     torch_home=get_settings().torch_home,
                     on_row=lambda row: progress.print(f"{row.network}: mAP {row.map:.3f}",
                                                       highlight=False))
    draw_zoo(result, plot)
    if as_json:
        print(json.dumps({**result.to_public(), "plot": str(plot), "machine": machine()}))
        return
    Console(width=max(console.width, 150)).print(zoo_table(result))
    console.print(f"plot: {plot}", highlight=False)


def zoo_table(result) -> Table:  # noqa: ANN001 - ZooResult, imported only when run
    """The zoo's figures as one table."""
    budget = (f"{result.seconds:g} s" if result.seconds is not None
              else f"{result.epochs} epochs")
    table = Table("network", "trained", "input", "dim", "mAP", "P@10", "accuracy", "params",
                  "mult-adds", "images/s", "epochs",
                  title=f"fashion-mnist, {result.queries} queries vs {result.gallery} images; "
                        f"{budget} of training each on {result.train_images} images, "
                        f"{result.torch_threads} torch threads")
    for row in result.rows:
        table.add_row(row.network, row.training, str(row.input_size), str(row.dim),
                      f"{row.map:.3f}", f"{row.p10:.3f}",
                      "-" if row.accuracy is None else f"{row.accuracy:.3f}",
                      f"{row.params / 1e6:.2f} M", f"{row.multiply_adds / 1e6:.1f} M",
                      f"{row.images_per_s:.0f}", f"{row.epochs:.2f}" if row.epochs else "-")
    return table
