"""/v1/jobs: submit an ingest, fine-tuning, reindex, text-train, text-apply, video-train or
top-patches, detect or duplicates job (202), follow it, list jobs, see curves, top patches
and duplicate clusters (JSON or CSV), and keep one image of a cluster."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, Response
from pydantic import Field

from lookalike.services.api.auth import NEEDS_ADMIN, NEEDS_INGEST, IdentityDep, audit
from lookalike.services.api.deps import MAX_ID, JobId, RuntimeDep
from lookalike.services.api.ratelimit import INGEST_RATE
from lookalike.services.api.schemas import ErrorResponse
from lookalike.services.auth.redact import shown_source
from lookalike.services.auth.scopes import ADMIN, INGEST, grants
from lookalike.services.errors import NotAllowed, NotFound
from lookalike.services.ingest.sources import UrlItem
from lookalike.services.jobs import duplicates as duplicates_jobs
from lookalike.services.jobs import runner as jobs
from lookalike.services.jobs.schemas import JobPublic
from lookalike.services.requestbody import RequestBody
from lookalike.services.text.request import TextTrainRequest
from lookalike.services.training.request import FinetuneRequest
from lookalike.services.video.request import VideoTrainRequest

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])
ERRORS = {status: {"model": ErrorResponse} for status in (404, 409, 422)}


class UrlEntry(RequestBody):
    """An image URL with the title, caption and label it gets in the catalog."""

    url: str
    title: str | None = None
    caption: str | None = None
    label: str | None = None


class JobCreate(RequestBody):
    """An ingest job over server-side paths (files, folders, lists) or URLs."""

    kind: Literal["ingest"] = "ingest"
    paths: list[str] | None = Field(None, description="files, folders, .txt/.lst path lists, "
                                    ".csv lists (path, title, caption, label columns)")
    urls: list[str | UrlEntry] | None = Field(
        None, description="http(s) URLs of images, each a string or {url, title, caption, "
        "label}")
    collection: str | None = None
    label_from_dir: bool = False
    detect: str | None = Field(None, min_length=1, max_length=100, description="run this "
                               "detector (a trained one, or 'faces') on the ingested images "
                               "and index its boxes as regions; default: the collection's "
                               "(LOOKALIKE_DETECT_DEFAULTS)")


class FinetuneJobCreate(FinetuneRequest):
    """A fine-tuning job on the catalog's labels, ending with a new space."""

    kind: Literal["finetune"]


class ReindexJobCreate(RequestBody):
    """A job that embeds every catalogued image into a space (e.g. a fine-tuned one)."""

    kind: Literal["reindex"]
    space: str = Field(description="the space to fill; search keeps using the default")


class TextTrainJobCreate(TextTrainRequest):
    """A text-CNN topic classifier trained on a corpus under the ingest roots, or on the
    catalog's captions; ends with text model NAME (the default one unless told)."""

    kind: Literal["text-train"]


class VideoTrainJobCreate(VideoTrainRequest):
    """A video classifier (3-D CNN or frame averaging) trained on a clip folder under the
    ingest roots; ends as video classifier TASK (the default one, applied at ingest, unless
    told)."""

    kind: Literal["video-train"]


class TextApplyJobCreate(RequestBody):
    """A job that gives every captioned image in the catalog its topic, page by page."""

    kind: Literal["text-apply"]
    model: str | None = Field(None, description="text model name; the default one if unset")


class TopPatchesJobCreate(RequestBody):
    """A pass over the catalog through a space's backbone that keeps the 9 image patches
    exciting one channel of one trunk block most (GET /v1/jobs/{id}/top-patches.png)."""

    kind: Literal["top-patches"]
    space: str | None = Field(None, description="the space (default: the default space)")
    layer: int = Field(ge=0, description="trunk block, 0-based")
    channel: int = Field(ge=0, description="channel of that block's output")
    limit: int = Field(5000, ge=1, description="look at the first N catalog images")


class DetectJobCreate(RequestBody):
    """A job that runs a detector over the catalog, page by page, storing its boxes as
    regions (GET /v1/images/{id}/regions)."""

    kind: Literal["detect"]
    detector: str = Field(min_length=1, max_length=63,
                          description="a trained detector's name, or 'faces'")
    collection: str | None = Field(None, max_length=200, description="only this collection")


class DuplicatesJobCreate(RequestBody):
    """A job that clusters a space's duplicate images over the whole catalog (range search +
    connected components); GET /v1/jobs/{id}/duplicates reads the clusters."""

    kind: Literal["duplicates"]
    space: str | None = Field(None, description="the space (default: the default space)")
    threshold: float | None = Field(None, ge=-1, le=1, description="cosine similarity "
                                    "linking two images (default: the space's calibrated "
                                    "copy score)")


class KeepOne(RequestBody):
    """The image of a duplicate cluster to keep; the cluster's others are deleted."""

    image_id: int = Field(ge=1, le=MAX_ID)


AnyJobCreate = Annotated[JobCreate | FinetuneJobCreate | ReindexJobCreate | TextTrainJobCreate
                         | TextApplyJobCreate | TopPatchesJobCreate | DetectJobCreate
                         | VideoTrainJobCreate | DuplicatesJobCreate,
                         Field(union_mode="left_to_right")]


@router.post("", status_code=202, responses=ERRORS | {401: {"model": ErrorResponse},
                                                     403: {"model": ErrorResponse}},
             response_model=JobPublic, dependencies=[INGEST_RATE])
async def create_job(body: AnyJobCreate, request: Request, runtime: RuntimeDep,
                     who: IdentityDep) -> dict[str, Any]:
    """Queue a job; it runs on the workers (or in this process without a broker). Ingest by
    URL needs the ingest scope; server paths (under LOOKALIKE_INGEST_ROOTS only), re-index,
    fine-tuning, text-train, text-apply, video-train, top-patches, detect and duplicates jobs
    need admin."""
    needed = INGEST if isinstance(body, JobCreate) and body.urls and not body.paths else ADMIN
    if not grants(who.scopes, needed):
        raise NotAllowed(f"the key {who.name!r} lacks the {needed!r} scope this job needs",
                         scope=needed)
    if needed == ADMIN:
        audit(request, who)
    if isinstance(body, TopPatchesJobCreate):
        job = await run_in_threadpool(jobs.submit_top_patches, runtime, space_name=body.space,
                                      layer=body.layer, channel=body.channel, limit=body.limit)
    elif isinstance(body, DuplicatesJobCreate):
        job = await run_in_threadpool(jobs.submit_duplicates, runtime, space_name=body.space,
                                      threshold=body.threshold)
    elif isinstance(body, DetectJobCreate):
        job = await run_in_threadpool(jobs.submit_detect, runtime, detector=body.detector,
                                      collection=body.collection)
    elif isinstance(body, ReindexJobCreate):
        job = await run_in_threadpool(jobs.submit_reindex, runtime, space_name=body.space)
    elif isinstance(body, TextApplyJobCreate):
        job = await run_in_threadpool(jobs.submit_text_apply, runtime, model_name=body.model)
    elif isinstance(body, VideoTrainJobCreate):
        video_request = VideoTrainRequest.model_validate(body.model_dump(exclude={"kind"}))
        job = await run_in_threadpool(jobs.submit_video_train, runtime, video_request,
                                      roots=list(runtime.settings.ingest_roots or []))
    elif isinstance(body, TextTrainJobCreate):
        text_request = TextTrainRequest.model_validate(body.model_dump(exclude={"kind"}))
        job = await run_in_threadpool(jobs.submit_text_train, runtime, text_request,
                                      roots=list(runtime.settings.ingest_roots or []))
    elif isinstance(body, FinetuneJobCreate):
        request = FinetuneRequest.model_validate(body.model_dump(exclude={"kind"}))
        job = await run_in_threadpool(jobs.submit_finetune, runtime, request)
    else:
        urls = [UrlItem(**url.model_dump()) if isinstance(url, UrlEntry) else url
                for url in body.urls or []]
        job = await run_in_threadpool(jobs.submit_ingest, runtime, paths=body.paths,
                                      urls=urls or None, collection=body.collection,
                                      label_from_dir=body.label_from_dir,
                                      roots=runtime.settings.ingest_roots, detect=body.detect)
    return jobs.describe(job)


@router.get("", responses=ERRORS, response_model=list[JobPublic], dependencies=[NEEDS_INGEST])
def list_jobs(runtime: RuntimeDep, state: str | None = None,
              limit: Annotated[int, Query(ge=1, le=500)] = 50) -> list[dict]:
    return [jobs.describe(job) for job in jobs.list_jobs(runtime, state=state, limit=limit)]


@router.get("/{job_id}", responses=ERRORS, response_model=JobPublic,
            dependencies=[NEEDS_INGEST])
def get_job(job_id: JobId, runtime: RuntimeDep) -> dict[str, Any]:
    return jobs.describe(jobs.get_job(runtime, job_id))


@router.post("/{job_id}/cancel", responses=ERRORS, response_model=JobPublic,
             dependencies=[NEEDS_ADMIN])
def cancel_job(job_id: JobId, runtime: RuntimeDep) -> dict[str, Any]:
    return jobs.describe(jobs.cancel(runtime, job_id))


@router.post("/{job_id}/retry", status_code=202, responses=ERRORS, response_model=JobPublic,
             dependencies=[NEEDS_ADMIN])
def retry_job(job_id: JobId, runtime: RuntimeDep) -> dict[str, Any]:
    return jobs.describe(jobs.retry(runtime, job_id))


@router.get("/{job_id}/curves.png", response_class=FileResponse, responses=ERRORS,
            dependencies=[NEEDS_INGEST])
def job_curves(job_id: JobId, runtime: RuntimeDep) -> FileResponse:
    """The training curves (loss, validation mAP per epoch) of a fine-tuning job."""
    curves = jobs.get_job(runtime, job_id).result.curves
    path = runtime.settings.layout.resolve(curves) if curves else None
    if path is None or not path.is_file():
        raise NotFound(f"job {job_id} has no training curves (yet); only fine-tuning jobs "
                       "draw them, after their first epoch")
    return FileResponse(path, media_type="image/png")


@router.get("/{job_id}/augmentations.png", response_class=FileResponse, responses=ERRORS,
            dependencies=[NEEDS_INGEST])
def job_augmentations(job_id: JobId, runtime: RuntimeDep) -> FileResponse:
    """The grid of copy-edited views a self-supervised fine-tuning job trains on."""
    grid = jobs.get_job(runtime, job_id).result.augmentations
    path = runtime.settings.layout.resolve(grid) if grid else None
    if path is None or not path.is_file():
        raise NotFound(f"job {job_id} has no augmentation grid; only self-supervised "
                       "fine-tuning jobs write one, when they start")
    return FileResponse(path, media_type="image/png")


@router.get("/{job_id}/top-patches.png", response_class=FileResponse, responses=ERRORS,
            dependencies=[NEEDS_INGEST])
def job_top_patches(job_id: JobId, runtime: RuntimeDep) -> FileResponse:
    """The 3x3 sheet of the patches a top-patches job found, best first."""
    patches = jobs.get_job(runtime, job_id).result.patches
    path = runtime.settings.layout.resolve(patches) if patches else None
    if path is None or not path.is_file():
        raise NotFound(f"job {job_id} has no top patches (yet); only top-patches jobs draw "
                       "them, when they succeed")
    return FileResponse(path, media_type="image/png")


@router.get("/{job_id}/duplicates", responses=ERRORS | {200: {"content": {
    "application/json": {}, "text/csv": {}}}}, dependencies=[NEEDS_INGEST])
def job_duplicates(job_id: JobId, runtime: RuntimeDep, who: IdentityDep,
                   fmt: Annotated[Literal["json", "csv"], Query(
                       alias="format", description="json (the clusters, biggest first) or "
                       "csv (one row per clustered image)")] = "json") -> Response:
    """The duplicate clusters a duplicates job found: each cluster's ids (the lowest first,
    the one to keep unless a person kept another: `resolved`), sources and similarities."""
    report = duplicates_jobs.read_report(runtime, jobs.get_job(runtime, job_id))
    full = grants(who.scopes, ADMIN)
    for cluster in report["clusters"]:
        cluster["sources"] = [shown_source(s, full=full) or "" for s in cluster["sources"]]
    if fmt == "csv":
        return Response(duplicates_jobs.report_csv(report), media_type="text/csv",
                        headers={"Content-Disposition":
                                 f'attachment; filename="duplicates-{job_id}.csv"'})
    return Response(json.dumps(report), media_type="application/json")


@router.post("/{job_id}/duplicates/{cluster}/keep", responses=ERRORS,
             dependencies=[NEEDS_ADMIN])
def keep_one_of_cluster(job_id: JobId, cluster: Annotated[int, Path(ge=1, le=MAX_ID)],
                        body: KeepOne, request: Request, runtime: RuntimeDep,
                        who: IdentityDep) -> dict[str, Any]:
    """Keep one image of cluster `cluster` (1-based, as listed) and delete its others: the
    cluster, with `resolved: {kept, deleted}`."""
    audit(request, who)
    return duplicates_jobs.keep_one(runtime, jobs.get_job(runtime, job_id), cluster,
                                    body.image_id)
