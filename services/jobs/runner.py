"""Jobs: submit an ingest, run its batches (in-process or on Celery workers), cancel, retry.

The same `run_batch` runs in a worker task, in the API's background thread and in the CLI.
Without a broker, the runner in this process holds the job's lease while it runs the
batches (jobs/lease.py), so that no other process runs them at the same time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from lookalike.retrieval.errors import ImageRejected, TrainingStopped
from lookalike.services.catalog import jobs as job_queries
from lookalike.services.catalog.documents import FinetuneParams, IngestParams
from lookalike.services.catalog.models import Job, utcnow
from lookalike.services.detection import running as detect_jobs
from lookalike.services.detection import training as detect_training
from lookalike.services.detection.request import DetectTrainRequest
from lookalike.services.errors import FetchFailed, InvalidRequest, JobNotFound
from lookalike.services.ingest.captions import NO_WORDS, Words
from lookalike.services.ingest.fence import check_under_roots
from lookalike.services.ingest.fetch import fetch_bytes
from lookalike.services.ingest.media import ingest_media
from lookalike.services.ingest.metadata import check_metadata
from lookalike.services.ingest.pipeline import IngestSummary, Outcome, ingest_bytes
from lookalike.services.ingest.sources import IngestItem, UrlItem, collect_items
from lookalike.services.jobs import duplicates as duplicates_jobs
from lookalike.services.jobs import finetune
from lookalike.services.jobs import reindex as reindex_jobs
from lookalike.services.jobs import top_patches as top_patches_jobs
from lookalike.services.jobs.lease import JobLease
from lookalike.services.jobs.schemas import JobPublic
from lookalike.services.runtime import Runtime
from lookalike.services.text import apply as text_apply
from lookalike.services.text import training as text_training
from lookalike.services.text.request import TextTrainRequest
from lookalike.services.training.request import FinetuneRequest
from lookalike.services.training.threads import training_threads
from lookalike.services.video import training as video_training
from lookalike.services.video.request import VideoTrainRequest

log = logging.getLogger(__name__)


def submit_ingest(runtime: Runtime, *, paths: Sequence[str | Path] | None = None,
                  urls: Sequence[str | UrlItem] | None = None, collection: str | None = None,
                  label_from_dir: bool = False, wait: bool = False,
                  roots: Sequence[Path] | None = None, detect: str | None = None) -> Job:
    """Record an ingest job and start it: on Celery workers when a broker is configured,
    else in this process (a background thread, or before returning when `wait`). With
    `roots` (a request over HTTP), every path and every file found must lie under them.
    A collection too long for the catalog is refused here; an over-long folder label fails
    only its own files when the job runs. `detect` (else the collection's default) runs
    on each batch's images, as `lookalike ingest --detect` does."""
    if bool(paths) == bool(urls):
        raise InvalidRequest("an ingest job needs either a non-empty 'paths' or 'urls' list")
    check_metadata(collection=collection, label=None)
    detect = detect_jobs.ingest_detector(runtime, collection=collection, asked=detect)
    if paths:
        found = _collect_fenced([Path(p) for p in paths], roots, collection=collection,
                                label_from_dir=label_from_dir)
        items = [_entry(str(item.path), item.label, item.title, item.caption)
                 for item in found]
    else:
        items = [_entry(url.url, url.label, url.title, url.caption) if isinstance(url, UrlItem)
                 else _entry(str(url), None, None, None) for url in urls or []]
    size = runtime.settings.job_batch_size
    params = IngestParams(source="paths" if paths else "urls", items=items, batch_size=size,
                          collection=collection, detect=detect)
    with runtime.session() as session:
        job = job_queries.create_job(session=session, kind="ingest", params=params,
                                     total=len(items), batches=-(-len(items) // size))
        session.commit()
    launch(runtime, job.id, batches=range(job.result.batch_count), wait=wait)
    return get_job(runtime, job.id)


Entry = tuple[str, str | None] | tuple[str, str | None, str | None, str | None]


def _entry(source: str, label: str | None, title: str | None, caption: str | None) -> Entry:
    """A job item: (source, label), with title and caption only when it has words."""
    return (source, label, title, caption) if title or caption else (source, label)


def _parts(entry: Sequence[str | None]) -> tuple[str, str | None, Words]:
    """The source, label and words of a job item."""
    words = Words(title=entry[2], caption=entry[3]) if len(entry) > 2 else NO_WORDS
    return str(entry[0]), entry[1], words


def _collect_fenced(paths: list[Path], roots: Sequence[Path] | None, *,
                    collection: str | None, label_from_dir: bool) -> list[IngestItem]:
    """The files to ingest; with `roots`, the paths are checked before any is read and each
    file found (through folders and list files) after."""
    if roots is not None:
        for path in paths:
            check_under_roots(path, roots)
    found = collect_items(paths, collection=collection, label_from_dir=label_from_dir)
    if roots is not None:
        for item in found:
            check_under_roots(item.path, roots, shown=item.path.name)
    return found


def launch(runtime: Runtime, job_id: int, *, batches: Sequence[int], wait: bool) -> None:
    """Start these batches of a job where the runtime's launcher runs jobs; run them here
    before returning when `wait` and they would run in this process anyway."""
    launcher = runtime.launcher
    if not launcher.remote and wait:
        run_batches(runtime, job_id, batches)
        return
    todo = _first_only(runtime, job_id, list(batches)) if launcher.remote else list(batches)
    try:
        launcher.send(runtime, job_id, todo)
    except Exception as exc:
        _fail_unsent(runtime, job_id, todo, f"could not be queued: {exc}")
        raise


def _fail_unsent(runtime: Runtime, job_id: int, batches: Sequence[int], error: str) -> None:
    """Record batches that never reached the broker as failed, so the job ends (failed)
    instead of waiting forever, and `jobs retry` sends them again."""
    job = get_job(runtime, job_id)
    with runtime.session() as session:
        for batch in batches:
            job_queries.record_batch(session=session, job_id=job_id, batch=batch, counts={},
                                     errors=[f"batch {batch}: {error}"],
                                     size=job_queries.batch_size(job, batch), error=error)
        session.commit()


def _first_only(runtime: Runtime, job_id: int, batches: list[int]) -> list[int]:
    """All the batches, or only the first for kinds whose batches must run in order (on
    workers, each sends the next when it is done)."""
    if get_job(runtime, job_id).kind in SEQUENTIAL_KINDS:
        return batches[:1]
    return batches


def resume_interrupted(runtime: Runtime) -> list[int]:
    """Start a runner for the unfinished batches of each job left queued or running when an
    in-process runner stopped (a crash, a restart); with a broker, Celery redelivers them
    instead. A job that another live process still runs keeps its lease: this runner waits
    and takes over only once that lease lapses (see jobs/lease.py)."""
    if runtime.launcher.remote:
        return []
    resumed = []
    for state in ("queued", "running"):
        for job in list_jobs(runtime, state=state, limit=1000):
            done = job.result.batches
            todo = [b for b in range(job.result.batch_count) if str(b) not in done]
            launch(runtime, job.id, batches=todo, wait=False)
            resumed.append(job.id)
    if resumed:
        log.info("resumed interrupted jobs %s", resumed)
    return resumed


def run_batches(runtime: Runtime, job_id: int, batches: Sequence[int], *,
                after_batch: Callable[[], object] | None = None) -> None:
    """Run batches one after another while holding the job's lease (waiting for it while
    another runner holds it); a batch that raises is recorded failed with its error.
    `after_batch` is called after each batch (a progress display)."""
    lease = JobLease(runtime, job_id)
    if not lease.acquire():
        return
    try:
        for batch in batches:
            if lease.lost:
                log.warning("job %d: another runner took it over; stopping before batch %d",
                            job_id, batch)
                return
            _run_or_fail(runtime, job_id, batch)
            if after_batch is not None:
                after_batch()
    finally:
        lease.release()


def _run_or_fail(runtime: Runtime, job_id: int, batch: int) -> None:
    try:
        run_batch(runtime, job_id, batch)
    except Exception as exc:
        log.exception("job %d batch %d failed", job_id, batch)
        fail_batch(runtime, job_id, batch, f"{type(exc).__name__}: {exc}")


def run_job(runtime: Runtime, job_id: int) -> Job:
    """Run every batch of a job in this process, then return its final row."""
    job = get_job(runtime, job_id)
    run_batches(runtime, job_id, range(job.result.batch_count))
    return get_job(runtime, job_id)


def run_batch(runtime: Runtime, job_id: int, batch: int) -> None:
    """Run one batch of a job by its kind and record its outcome; skipped when the job was
    cancelled or the batch already has an outcome (a redelivered task)."""
    with runtime.session() as session:
        if not job_queries.start_batch(session=session, job_id=job_id, batch=batch):
            session.commit()
            return
        job = job_queries.get_job(session=session, job_id=job_id)
        session.commit()
        session.expunge(job)
    runner = BATCH_RUNNERS.get(job.kind)
    if runner is None:
        raise InvalidRequest(f"job {job_id} has kind {job.kind!r}; known kinds: "
                             f"{', '.join(sorted(BATCH_RUNNERS))}")
    runner(runtime, job, batch)


def _ingest_batch(runtime: Runtime, job: Job, batch: int) -> None:
    """Ingest one chunk of an ingest job's paths or URLs."""
    params = job.params
    assert isinstance(params, IngestParams), f"job {job.id} is not an ingest job"
    size = params.batch_size
    chunk = params.items[batch * size:(batch + 1) * size]
    if params.source == "paths":
        items = [IngestItem(path=Path(source), collection=params.collection, label=label,
                            title=words.title, caption=words.caption)
                 for source, label, words in map(_parts, chunk)]
        summary = ingest_media(runtime, items)
    else:
        summary = ingest_urls(runtime, chunk, collection=params.collection)
    regions, errors = _detect_ingested(runtime, summary, params.detect)
    _record(runtime, job.id, batch, summary, size=len(chunk), regions=regions,
            errors=errors)


def _detect_ingested(runtime: Runtime, summary: IngestSummary,
                     detector: str | None) -> tuple[int, list[str]]:
    """Run the job's detector on the images a batch added or found again (their regions
    replaced, so a retried batch stores them once); (regions stored, errors)."""
    if detector is None:
        return 0, []
    ids = sorted({o.image_id for o in summary.outcomes
                  if o.status in ("added", "duplicate") and o.image_id is not None})
    regions, _, errors = detect_jobs.detect_images(runtime, ids, name=detector)
    return regions, [f"detector {detector}: {error}" for error in errors]


def submit_reindex(runtime: Runtime, *, space_name: str, wait: bool = False) -> Job:
    """Record a job that embeds the catalog into `space_name` and start it where jobs run."""
    job = reindex_jobs.create_reindex_job(runtime, space_name=space_name)
    launch(runtime, job.id, batches=range(job.result.batch_count), wait=wait)
    return get_job(runtime, job.id)


def submit_text_apply(runtime: Runtime, *, model_name: str | None = None,
                      wait: bool = False) -> Job:
    """Record a job that gives every captioned image its topic with the named (else the
    default) text model, a page of ids per batch, and start it where jobs run."""
    job = text_apply.create_text_apply_job(runtime, model_name=model_name)
    launch(runtime, job.id, batches=range(job.result.batch_count), wait=wait)
    return get_job(runtime, job.id)


def submit_top_patches(runtime: Runtime, *, space_name: str | None, layer: int, channel: int,
                       limit: int = 5000, wait: bool = False) -> Job:
    """Record a job that finds the catalog patches exciting one channel of one block most,
    and start it where jobs run."""
    job = top_patches_jobs.create_top_patches_job(runtime, space_name=space_name, layer=layer,
                                                  channel=channel, limit=limit)
    launch(runtime, job.id, batches=[0], wait=wait)
    return get_job(runtime, job.id)


def submit_duplicates(runtime: Runtime, *, space_name: str | None,
                      threshold: float | None = None, wait: bool = False) -> Job:
    """Record a job that clusters the space's duplicate images (range search + connected
    components over the whole catalog), and start it where jobs run."""
    job = duplicates_jobs.create_duplicates_job(runtime, space_name=space_name,
                                                threshold=threshold)
    launch(runtime, job.id, batches=[0], wait=wait)
    return get_job(runtime, job.id)


def submit_finetune(runtime: Runtime, request: FinetuneRequest, *, wait: bool = False) -> Job:
    """Record a fine-tuning job, one batch per epoch, and start it where jobs run."""
    finetune.check_request(runtime, request)
    params = FinetuneParams(request=request.model_dump(mode="json"),
                            batch_sizes=[1] * request.epochs)
    with runtime.session() as session:
        job = job_queries.create_job(session=session, kind="finetune", params=params,
                                     total=request.epochs, batches=request.epochs)
        session.commit()
    launch(runtime, job.id, batches=range(request.epochs), wait=wait)
    return get_job(runtime, job.id)


def submit_text_train(runtime: Runtime, request: TextTrainRequest, *, wait: bool = False,
                      roots: list[Path] | None = None) -> Job:
    """Record a text-CNN training job, one batch per epoch, and start it where jobs run.
    With `roots` (a request over HTTP) the corpus must lie under them."""
    text_training.check_request(runtime, request, roots=roots)
    with runtime.session() as session:
        job = job_queries.create_job(session=session, kind="text-train",
                                     params=text_training.job_params(request),
                                     total=request.epochs, batches=request.epochs)
        session.commit()
    launch(runtime, job.id, batches=range(request.epochs), wait=wait)
    return get_job(runtime, job.id)


def submit_detect_train(runtime: Runtime, request: DetectTrainRequest, *,
                        wait: bool = False) -> Job:
    """Record a detector training job, one batch per epoch, and start it where jobs run."""
    job = detect_training.create_train_job(runtime, request)
    launch(runtime, job.id, batches=range(request.total_epochs), wait=wait)
    return get_job(runtime, job.id)


def submit_video_train(runtime: Runtime, request: VideoTrainRequest, *, wait: bool = False,
                       roots: list[Path] | None = None) -> Job:
    """Record a video-classifier training job, one batch per epoch, and start it where jobs
    run. With `roots` (a request over HTTP) the clip folder must lie under them."""
    video_training.check_request(request, roots=roots)
    with runtime.session() as session:
        job = job_queries.create_job(session=session, kind="video-train",
                                     params=video_training.job_params(request),
                                     total=request.epochs, batches=request.epochs)
        session.commit()
    launch(runtime, job.id, batches=range(request.epochs), wait=wait)
    return get_job(runtime, job.id)


def submit_detect(runtime: Runtime, *, detector: str, collection: str | None = None,
                  wait: bool = False) -> Job:
    """Record a job that runs `detector` over the catalog, a page of ids per batch, storing
    its boxes as regions, and start it where jobs run."""
    job = detect_jobs.create_detect_job(runtime, name=detector, collection=collection)
    launch(runtime, job.id, batches=range(job.result.batch_count), wait=wait)
    return get_job(runtime, job.id)


def _detect_train_batch(runtime: Runtime, job: Job, epoch: int) -> None:
    """Train one epoch of a detector, in order like a fine-tuning job's."""
    _epoch_batch(detect_training.run_train_epoch, runtime, job, epoch)


def _finetune_batch(runtime: Runtime, job: Job, epoch: int) -> None:
    """Train one epoch; with a broker, the next epoch is sent once this one is recorded (the
    epochs of a job run in order, never side by side)."""
    _epoch_batch(finetune.run_epoch, runtime, job, epoch)


def _text_train_batch(runtime: Runtime, job: Job, epoch: int) -> None:
    """Train one epoch of a text-CNN job, in order like a fine-tuning job's."""
    _epoch_batch(text_training.run_epoch, runtime, job, epoch)


def _video_train_batch(runtime: Runtime, job: Job, epoch: int) -> None:
    """Train one epoch of a video classifier, in order like a fine-tuning job's."""
    _epoch_batch(video_training.run_epoch, runtime, job, epoch)


def _epoch_batch(run_epoch: Callable[[Runtime, Job, int], None], runtime: Runtime, job: Job,
                 epoch: int) -> None:
    """Run one epoch of a training job on the training threads and record it; with a
    broker, send the next one."""
    try:
        with training_threads(runtime.settings):
            run_epoch(runtime, job, epoch)
    except TrainingStopped:
        log.info("job %d stopped in epoch %d: cancelled", job.id, epoch)
        return
    _record(runtime, job.id, epoch, IngestSummary(), size=1)
    if runtime.launcher.remote and epoch + 1 < job.result.batch_count:
        runtime.launcher.send(runtime, job.id, [epoch + 1])


BATCH_RUNNERS: dict[str, Callable[[Runtime, Job, int], None]] = {
    "ingest": _ingest_batch,
    "finetune": _finetune_batch,
    "reindex": reindex_jobs.run_reindex_batch,
    "text-train": _text_train_batch,
    "text-apply": text_apply.run_text_apply_batch,
    "video-train": _video_train_batch,
    top_patches_jobs.KIND: top_patches_jobs.run_top_patches_batch,
    duplicates_jobs.KIND: duplicates_jobs.run_duplicates_batch,
    detect_training.KIND: _detect_train_batch,
    detect_jobs.KIND: detect_jobs.run_detect_batch,
}
SEQUENTIAL_KINDS = frozenset({"finetune", "text-train", "video-train", detect_training.KIND})
TRAINING_KINDS = SEQUENTIAL_KINDS
TRAINING_KEYS = ("history", "baseline_val_map", "train_images", "val_images", "classes",
                 "space", "weights_file", "weights_sha256", "head_file", "curves",
                 "augmentations", "text_model", "video_classifier", "figures")


def ingest_urls(runtime: Runtime, chunk: Sequence[Sequence[str | None]], *,
                collection: str | None) -> IngestSummary:
    """Download and ingest each URL with the words a URL list gave it; a download, image or
    over-long label or words problem fails only that URL."""
    summary = IngestSummary()
    for url, label, words in map(_parts, chunk):
        try:
            data = fetch_bytes(url, settings=runtime.settings)
            result = ingest_bytes(runtime, data, source=url, collection=collection,
                                  label=label, words=words)
        except (FetchFailed, ImageRejected, InvalidRequest) as exc:
            summary.record(Outcome(str(url), "failed", None, str(exc)))
            continue
        summary.record(Outcome(str(url), "added" if result.created else "duplicate",
                               result.image.id))
    return summary


def _record(runtime: Runtime, job_id: int, batch: int, summary: IngestSummary, *,
            size: int, regions: int = 0, errors: Sequence[str] = ()) -> None:
    counts = {"added": summary.added, "duplicates": summary.duplicates,
              "failed": summary.failed, "regions": regions}
    errors = [*(f"{o.source}: {o.reason}" for o in summary.outcomes if o.status == "failed"),
              *errors]
    with runtime.session() as session:
        job_queries.record_batch(session=session, job_id=job_id, batch=batch, counts=counts,
                                 errors=errors, size=size)
        session.commit()


def fail_batch(runtime: Runtime, job_id: int, batch: int, error: str) -> None:
    """Record that a batch gave up; the job's other batches go on, except in a job whose
    batches run in order (an epoch cannot follow a failed one): those are failed too."""
    job = get_job(runtime, job_id)
    later = range(batch + 1, job.result.batch_count) if job.kind in SEQUENTIAL_KINDS else ()
    with runtime.session() as session:
        job_queries.record_batch(session=session, job_id=job_id, batch=batch, counts={},
                                 errors=[f"batch {batch}: {error}"],
                                 size=job_queries.batch_size(job, batch), error=error)
        for skipped in later:
            job_queries.record_batch(session=session, job_id=job_id, batch=skipped, counts={},
                                     errors=[], size=0, error=f"not run: batch {batch} failed")
        session.commit()


def get_job(runtime: Runtime, job_id: int) -> Job:
    """The job's row; JobNotFound when there is none."""
    with runtime.session() as session:
        job = job_queries.get_job(session=session, job_id=job_id)
    if job is None:
        raise JobNotFound(f"no job with id {job_id}; GET /v1/jobs lists the jobs")
    return job


def list_jobs(runtime: Runtime, *, state: str | None = None, limit: int = 50) -> list[Job]:
    with runtime.session() as session:
        return job_queries.list_jobs(session=session, state=state, limit=limit)


def cancel(runtime: Runtime, job_id: int) -> Job:
    """Cancel a queued or running job: its batches not yet started are skipped."""
    with runtime.session() as session:
        job = job_queries.cancel_job(session=session, job_id=job_id)
        session.commit()
    return job


def retry(runtime: Runtime, job_id: int, *, wait: bool = False) -> Job:
    """Queue a failed or cancelled job again; only its unfinished batches run."""
    with runtime.session() as session:
        _, batches = job_queries.reset_for_retry(session=session, job_id=job_id)
        session.commit()
    launch(runtime, job_id, batches=batches, wait=wait)
    return get_job(runtime, job_id)


def describe(job: Job) -> dict[str, Any]:
    """A job as the API and the CLI show it: state, progress with rate, counts, errors."""
    result = job.result
    rate = None
    if job.started_at is not None:
        end = job.finished_at or utcnow()
        elapsed = (end - job.started_at).total_seconds()
        rate = round(job.progress_done / elapsed, 2) if elapsed > 0 else None
    figures = result.model_dump(mode="json", include=set(TRAINING_KEYS))
    training = {key: value for key, value in figures.items() if value is not None}
    patches = {"png": result.patches, "top": [{"image_id": image_id, "response": value}
                                              for image_id, value in result.top or []]}
    hidden = ({"training"} if job.kind not in TRAINING_KINDS else set()) | (
        {"top_patches"} if job.kind != top_patches_jobs.KIND else set()) | (
        {"clusters"} if job.kind != duplicates_jobs.KIND else set())
    return JobPublic.model_validate({
        "id": job.id, "kind": job.kind, "state": job.state, "attempts": job.attempts,
        "training": training if job.kind in TRAINING_KINDS else None,
        "top_patches": patches if job.kind == top_patches_jobs.KIND else None,
        "clusters": result.clusters if job.kind == duplicates_jobs.KIND else None,
        "progress": {"done": job.progress_done, "total": job.progress_total,
                     "rate_per_s": rate},
        "counts": {"added": result.added, "duplicates": result.duplicates,
                   "failed": result.failed, "regions": result.regions},
        "batches": {"total": result.batch_count, "finished": len(result.batches)},
        "error": job.error, "errors": result.errors,
        "created_at": job.created_at.isoformat() if job.created_at else None,
        "started_at": job.started_at.isoformat() if job.started_at else None,
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
    }).model_dump(mode="json", exclude=hidden or None)
