"""Duplicates jobs: the duplicate clusters of a space's whole catalog (range search +
connected components, index/duplicates.py), found where jobs run, and resolved one cluster
at a time ("keep this one, delete the others").

A job of one batch, so that a pass over a large catalog runs on a worker (or the server's
background thread) instead of inside a request. The report (the JSON export, each cluster
with a `resolved` entry once a person has kept one of its images) goes to the job's folder;
the job's result records a summary and the report's home-relative path.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from pathlib import Path
from typing import Any

from lookalike.retrieval import atomic
from lookalike.services.catalog.documents import DuplicatesParams
from lookalike.services.catalog.models import Job
from lookalike.services.errors import ImageNotFound, InvalidRequest, NotFound
from lookalike.services.index.duplicates import CSV_FIELDS, check_threshold, find_duplicates
from lookalike.services.ingest.images import delete_image
from lookalike.services.jobs.single import create_single_batch_job, finish_single_batch
from lookalike.services.runtime import Runtime

log = logging.getLogger(__name__)

KIND = "duplicates"
REPORT = "duplicates.json"


def create_duplicates_job(runtime: Runtime, *, space_name: str | None,
                          threshold: float | None) -> Job:
    """A queued job of one batch, once the space exists and has a threshold (given, or its
    calibrated copy score): a bad request is refused now, not when the job runs."""
    name = check_threshold(runtime, space_name=space_name, threshold=threshold)
    return create_single_batch_job(runtime, kind=KIND,
                                   params=DuplicatesParams(space=name, threshold=threshold))


def run_duplicates_batch(runtime: Runtime, job: Job, batch: int) -> None:
    """Cluster the space, write the report into the job's folder, record its summary."""
    params = job.params
    assert isinstance(params, DuplicatesParams), f"job {job.id} is not a duplicates job"
    report = find_duplicates(runtime, space_name=params.space, threshold=params.threshold)
    public = report.to_public()
    path = runtime.settings.layout.job(job.id) / REPORT
    _write(path, public)
    summary = {key: public[key] for key in ("space", "threshold", "threshold_from", "images",
                                            "extras")}
    summary |= {"clusters": len(report.clusters),
                "report": runtime.settings.layout.stored(path)}
    finish_single_batch(runtime, job, batch, {"clusters": summary})
    log.info("job %d: %d duplicate clusters in space %s (%d extra images)", job.id,
             len(report.clusters), report.space, report.extras)


def _write(path: Path, report: dict[str, Any]) -> None:
    atomic.write_atomic(path, lambda handle: handle.write(json.dumps(report).encode()))


def _report_path(runtime: Runtime, job: Job) -> Path:
    summary = job.result.clusters if job.kind == KIND else None
    path = runtime.settings.layout.resolve(summary["report"]) if summary else None
    if path is None or not path.is_file():
        raise NotFound(f"job {job.id} has no duplicate clusters (yet); only duplicates jobs "
                       "find them, when they succeed")
    return path


def read_report(runtime: Runtime, job: Job) -> dict[str, Any]:
    """The job's clusters as the JSON export, each with `resolved` once one was kept."""
    return json.loads(_report_path(runtime, job).read_text(encoding="utf-8"))


def report_csv(report: dict[str, Any]) -> str:
    """The CSV export of a report: one row per image in a cluster; `keep` marks the one to
    keep (the one a person kept, once resolved)."""
    stream = io.StringIO()
    writer = csv.writer(stream)
    writer.writerow(CSV_FIELDS)
    for number, cluster in enumerate(report["clusters"], start=1):
        keep = (cluster.get("resolved") or {}).get("kept", cluster["keep"])
        for image_id, source in zip(cluster["ids"], cluster["sources"], strict=True):
            writer.writerow((number, image_id, int(image_id == keep), source,
                             f"{cluster['best']:.6f}", f"{cluster['worst']:.6f}"))
    return stream.getvalue()


def keep_one(runtime: Runtime, job: Job, cluster: int, image_id: int) -> dict[str, Any]:
    """Keep `image_id` of cluster number `cluster` (1-based, as listed) and delete the
    others (those already gone are skipped); the cluster, marked resolved, is recorded in
    the report and returned."""
    path = _report_path(runtime, job)
    report = json.loads(path.read_text(encoding="utf-8"))
    clusters = report["clusters"]
    if not 1 <= cluster <= len(clusters):
        raise NotFound(f"job {job.id} found {len(clusters)} clusters; there is no cluster "
                       f"{cluster}")
    chosen = clusters[cluster - 1]
    if image_id not in chosen["ids"]:
        raise InvalidRequest(f"image {image_id} is not in cluster {cluster} (its images: "
                             f"{', '.join(map(str, chosen['ids']))})")
    deleted = []
    for other in chosen["ids"]:
        if other == image_id:
            continue
        try:
            delete_image(runtime, other)
        except ImageNotFound:
            continue
        deleted.append(other)
    chosen["resolved"] = {"kept": image_id, "deleted": deleted}
    _write(path, report)
    log.info("job %d cluster %d: kept image %d, deleted %s", job.id, cluster, image_id,
             deleted)
    return chosen
