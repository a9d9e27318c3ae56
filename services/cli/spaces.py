"""`lookalike spaces create|reindex|list|set-default|delete`: spaces with descriptor options,
filled from the catalog by a job, switched to, compared and removed."""

from __future__ import annotations

import functools
import json
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from lookalike.retrieval.embedding.pooling import POOLING_METHODS
from lookalike.retrieval.models.engine_names import ENGINES
from lookalike.retrieval.models.specs import DEFAULT_BACKBONE
from lookalike.services.catalog import jobs as job_queries
from lookalike.services.catalog.documents import DEFAULT_SHORTLIST
from lookalike.services.config import get_settings
from lookalike.services.errors import InvalidRequest
from lookalike.services.jobs import reindex as reindex_jobs
from lookalike.services.jobs import runner as jobs
from lookalike.services.runtime import Runtime
from lookalike.services.setup import open_runtime
from lookalike.services.spaces import lifecycle as space_lifecycle
from lookalike.services.spaces.create import SpaceDefinition, create_space
from lookalike.services.spaces.lifecycle import EvaluationSummary, SpaceSummary

console = Console()
POLL_S = 0.5


def spaces_create(
    name: Annotated[str, typer.Argument(help="the new space's name")],
    backbone: Annotated[str, typer.Option(help="registry name, e.g. mobilenet_v2")
                        ] = DEFAULT_BACKBONE,
    weights: Annotated[Path | None, typer.Option(
        help="a weight file (e.g. fine-tuned); default: the registry's resolution order")] = None,
    pooling: Annotated[str, typer.Option(help=f"one of: {', '.join(POOLING_METHODS)}")] = "gap",
    gem_p: Annotated[float, typer.Option(help="GeM exponent")] = 3.0,
    input_size: Annotated[int | None, typer.Option(
        help="side in pixels images are resized to (default: the backbone's); give a "
        "fine-tuned network the size it was trained at")] = None,
    multiscale: Annotated[bool, typer.Option(help="sum descriptors at scales 1, 1/√2, 1/2")
                          ] = False,
    whiten: Annotated[int | None, typer.Option(help="learn PCA whitening to this dimension")
                      ] = None,
    whiten_from: Annotated[Path | None, typer.Option(
        help="learn the whitening from this folder's images (default: the catalog)")] = None,
    whiten_images: Annotated[int, typer.Option(help="at most this many images to learn from")
                             ] = 3000,
    whiten_shrinkage: Annotated[float, typer.Option(
        help="1 = full whitening, 0.5 = square-root, 0 = PCA rotation only")] = 1.0,
    whiten_labels: Annotated[bool, typer.Option(
        help="learn the whitening from labels (Lw): images of one label are matches; labels "
        "are --whiten-from's sub-folder names, or the catalog's")] = False,
    qe: Annotated[bool, typer.Option(help="α-query expansion on by default")] = False,
    qe_n: Annotated[int, typer.Option(help="αQE neighbours")] = 5,
    qe_alpha: Annotated[float, typer.Option(help="αQE/DBA weight exponent")] = 3.0,
    dba: Annotated[int, typer.Option(
        help="DBA neighbours, applied by default to searches (re-ranking their top hits) and "
        "`evaluate`; 0 = off unless a search asks with --dba")] = 0,
    dba_shortlist: Annotated[int, typer.Option(
        help="how many top hits a search re-ranks with DBA")] = DEFAULT_SHORTLIST,
    index_factory: Annotated[str, typer.Option(help="FAISS factory string")] = "Flat",
    backend: Annotated[str, typer.Option(
        help="where vectors are searched: faiss (per-process replicas) or milvus "
        "(LOOKALIKE_MILVUS_URI: a cluster, or a local .db path for milvus-lite)")] = "faiss",
    engine: Annotated[str | None, typer.Option(
        help=f"inference engine: one of {', '.join(ENGINES)}; default: LOOKALIKE_ENGINE, else "
        "the fastest installed one whose vectors match torch's")] = None,
    verify: Annotated[bool, typer.Option(
        help="searches re-rank their top hits by local-feature inliers by default")] = False,
    verify_n: Annotated[int, typer.Option(help="how many top hits verification checks")] = 20,
    default: Annotated[bool, typer.Option(help="make it the default space")] = False,
) -> None:
    """Add an embedding space; fill it with `lookalike spaces reindex NAME`."""
    definition = SpaceDefinition(
        backbone=backbone, weights=weights, pooling=pooling, gem_p=gem_p, input_size=input_size,
        multiscale=multiscale,
        whiten_dim=whiten, whiten_from=whiten_from, whiten_images=whiten_images,
        whiten_shrinkage=whiten_shrinkage, whiten_labels=whiten_labels, qe=qe, qe_n=qe_n,
        qe_alpha=qe_alpha, dba_n=dba, dba_shortlist=dba_shortlist, index_factory=index_factory,
        backend=backend, engine=engine, verify=verify, verify_n=verify_n)
    with open_runtime(get_settings()) as runtime:
        space = create_space(runtime, name=name, definition=definition, make_default=default)
    console.print(f"created space {space.name}: {space.backbone}, {space.pooling}, "
                  f"dim {space.dim}, whitening {space.whitening or 'none'}, "
                  f"backend {space.options.backend}, "
                  f"scales {space.options.scales}, engine {space.options.engine}; now run "
                  f"`lookalike spaces reindex {name}`")


def spaces_reindex(
    name: Annotated[str, typer.Argument(help="the space to fill")],
    wait: Annotated[bool, typer.Option(
        "--wait/--no-wait", help="follow the job to its end (--no-wait: only submit it to "
        "the workers)")] = True,
) -> None:
    """Embed every catalogued image into the space as a job, batch by batch; images already
    there are skipped, so it resumes. Searches keep using the default space meanwhile."""
    with open_runtime(get_settings()) as runtime:
        workers = runtime.launcher.remote
        if not wait and not workers:
            raise InvalidRequest(
                "--no-wait needs workers (LOOKALIKE_BROKER_URL); without them the job runs in "
                "this command. Run it without --no-wait, or ask a running server: POST "
                f'/v1/jobs {{"kind": "reindex", "space": "{name}"}}')
        if not wait:
            job = jobs.submit_reindex(runtime, space_name=name)
            console.print(f"job {job.id} submitted: {job.progress_total} images in "
                          f"{job.result.batch_count} batches; `lookalike jobs show {job.id}` "
                          "follows it")
            return
        shown = _reindex_with_progress(runtime, name, on_workers=workers)
    counts = shown["counts"]
    console.print(f"space {name}: embedded {counts['added']}, already there "
                  f"{counts['duplicates']}, failed {counts['failed']}; job {shown['id']} "
                  f"{shown['state']}", highlight=False)
    for line in shown["errors"][:20]:
        console.print(f"  {line}", highlight=False)
    if shown["state"] != "succeeded":
        raise typer.Exit(1)


def _reindex_with_progress(runtime: Runtime, name: str, *, on_workers: bool) -> dict:
    """Run a reindex job under a progress bar: followed on the workers, or batch by batch in
    this thread (so the last batch's snapshot is written before the command ends)."""
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), TimeRemainingColumn(),
                  console=Console(stderr=True)) as progress:
        task = progress.add_task(f"reindexing {name}", total=None)
        job = (jobs.submit_reindex(runtime, space_name=name) if on_workers
               else reindex_jobs.create_reindex_job(runtime, space_name=name))
        follow = functools.partial(_show_progress, runtime, job.id, progress, task)
        try:
            shown = follow()
            if not on_workers:
                jobs.run_batches(runtime, job.id, range(job.result.batch_count),
                                 after_batch=follow)
                shown = follow()
            while shown["state"] in ("queued", "running"):
                time.sleep(POLL_S)
                shown = follow()
        except KeyboardInterrupt:
            goes_on = ("the workers go on with it" if on_workers else "run the command again "
                       "to finish it (images already embedded are skipped)")
            console.print(f"stopped following job {job.id}: {goes_on}")
            raise typer.Exit(130) from None
    return shown


def _show_progress(runtime: Runtime, job_id: int, progress: Progress, task: TaskID) -> dict:
    """The job as `jobs show --json` prints it, its progress drawn on the bar."""
    with runtime.read_session() as session:
        row = job_queries.get_job(session=session, job_id=job_id)
    assert row is not None, "job rows are never deleted"
    shown = jobs.describe(row)
    progress.update(task, completed=shown["progress"]["done"], total=shown["progress"]["total"])
    return shown


def _evaluation_cell(evaluation: EvaluationSummary | None) -> str:
    if evaluation is None:
        return "none"
    p1, p10 = evaluation.precision_at_1, evaluation.precision_at_10
    return (f"{evaluation.benchmark}: mAP {evaluation.map:.4f}"
            + (f", P@1 {p1:.3f}" if p1 is not None else "")
            + (f", P@10 {p10:.3f}" if p10 is not None else "")
            + f" ({evaluation.queries} queries, {evaluation.gallery} gallery; "
            f"{evaluation.evaluated_at:%Y-%m-%d %H:%M})")


def _lag_cell(summary: SpaceSummary) -> str:
    """The images a space lacks; a space not filled yet does not follow new images."""
    return str(summary.lag) if summary.filled else f"{summary.lag} (not filled)"


def spaces_list(as_json: Annotated[bool, typer.Option(
        "--json", help="print the API's JSON answer (GET /v1/spaces)")] = False) -> None:
    """Every embedding space: definition, vector count, lag behind the catalog, default,
    last evaluation."""
    with open_runtime(get_settings()) as runtime:
        summaries = space_lifecycle.list_spaces(runtime)
    if as_json:
        print(json.dumps([summary.to_public() for summary in summaries]))
        return
    table = Table("name", "default", "backbone", "pooling", "whitening", "dim", "vectors",
                  "lag", "weights sha256")
    table.add_column("options", overflow="fold")
    table.add_column("last evaluation")
    for s in summaries:
        table.add_row(s.name, "yes" if s.is_default else "", s.backbone, s.pooling,
                      s.whitening or "none", str(s.dim), str(s.vector_count),
                      _lag_cell(s), (s.weights_sha256 or "none")[:12],
                      json.dumps(s.options, separators=(",", ":")),
                      _evaluation_cell(s.last_evaluation))
    console.print(table)


def spaces_set_default(
    name: Annotated[str, typer.Argument(help="the space searches will use")],
    force: Annotated[bool, typer.Option(
        help="switch even if the space holds fewer vectors than the current default")
                     ] = False,
) -> None:
    """Make a space the default of every API process, at once (one transaction)."""
    with open_runtime(get_settings()) as runtime:
        summary = space_lifecycle.set_default(runtime, name=name, force=force)
    console.print(f"default space is now {summary.name}: {summary.vector_count} vectors",
                  highlight=False)


def spaces_delete(
    name: Annotated[str, typer.Argument(help="the space to delete (not the default)")],
    yes: Annotated[bool, typer.Option("--yes", help="do not ask for confirmation")] = False,
) -> None:
    """Delete a space: its vectors, index files and evaluations; never another space's."""
    if not yes:
        typer.confirm(f"Delete space '{name}' with its vectors and index files?", abort=True)
    with open_runtime(get_settings()) as runtime:
        deleted = space_lifecycle.delete_space(runtime, name=name)
    whitening = (f", whitening file {deleted.whitening_file}" if deleted.whitening_file
                 else "")
    trained = "".join(f", {path}" for path in deleted.trained_files)
    if deleted.milvus_collection:
        trained += f", Milvus collection {deleted.milvus_collection}"
    console.print(f"deleted space {deleted.name}: {deleted.vectors} vectors, "
                  f"{deleted.index_files} index files{whitening}{trained}", highlight=False)
