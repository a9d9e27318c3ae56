"""Reindex jobs: embed the whole catalog into a space as a job, batch by batch, resumably.

The batches are fixed pages of the ids of the images embedded when the job was submitted,
each recorded by its first and last id so that the job row stays small for any catalog. A
batch skips the images the space already holds, so a resumed or redelivered batch adds
nothing twice. The batch that completes the job marks the space filled, so that ingest
keeps it whole from then on, embeds the images ingested while the job ran (spaces/fill),
and writes the space's index snapshot. Searches keep using the default space meanwhile:
nothing here touches which space is the default.
"""

from __future__ import annotations

import logging

from lookalike.services.catalog import images as image_queries
from lookalike.services.catalog import jobs as job_queries
from lookalike.services.catalog import spaces as space_queries
from lookalike.services.catalog.documents import ReindexParams
from lookalike.services.catalog.models import Job
from lookalike.services.detection.embedding import SUFFIX as REGIONS_SUFFIX
from lookalike.services.detection.embedding import embed_space_regions
from lookalike.services.errors import InvalidRequest
from lookalike.services.index.snapshots import snapshot_all
from lookalike.services.runtime import Runtime
from lookalike.services.spaces.fill import catch_up, embed_missing
from lookalike.services.spaces.lookup import find_space

log = logging.getLogger(__name__)

KIND = "reindex"


def create_reindex_job(runtime: Runtime, *, space_name: str) -> Job:
    """A queued reindex job over the images embedded now, in pages of `job_batch_size` ids."""
    size = runtime.settings.job_batch_size
    with runtime.session() as session:
        space = find_space(session=session, name=space_name)
        if space.options.regions_of is not None:
            raise InvalidRequest(f"space '{space.name}' holds regions: reindex its image "
                                 "space, which embeds the regions into it too")
        ids = image_queries.ids_with_status(session=session, status="embedded")
        pages = [ids[start:start + size] for start in range(0, len(ids), size)]
        params = ReindexParams(space=space.name, batch_size=size,
                               pages=[(page[0], page[-1]) for page in pages],
                               batch_sizes=[len(page) for page in pages])
        job = job_queries.create_job(session=session, kind=KIND, params=params,
                                     total=len(ids), batches=len(pages))
        if not pages:  # an empty catalog: the space holds all of it already
            space_queries.mark_filled(session=session, space_id=space.id)
        session.commit()
    return job


def _params(job: Job) -> ReindexParams:
    assert isinstance(job.params, ReindexParams), f"job {job.id} is not a reindex job"
    return job.params


def page_ids(runtime: Runtime, job: Job, batch: int) -> list[int]:
    """The embedded images of one page of a reindex job (those deleted since drop out)."""
    first, last = _params(job).pages[batch]
    with runtime.read_session() as session:
        return image_queries.ids_with_status(session=session, status="embedded", first=first,
                                             last=last)


def run_reindex_batch(runtime: Runtime, job: Job, batch: int) -> None:
    """Embed one page into the space and record it. The page that completes the job marks
    a space it filled as such in the same transaction, then catches it up on the images
    ingested since the job was submitted, and snapshots the space's index, so API processes
    load it instead of rebuilding."""
    space_name = _params(job).space
    ids = page_ids(runtime, job, batch)
    outcome = embed_missing(runtime, space_name=space_name, image_ids=ids)
    if not space_name.endswith(REGIONS_SUFFIX):  # and the page's regions, into its region space
        embed_space_regions(runtime, space_name=space_name, image_ids=ids)
    counts = {"added": outcome.added, "duplicates": outcome.present,
              "failed": len(outcome.errors)}
    with runtime.session() as session:
        recorded = job_queries.record_batch(session=session, job_id=job.id, batch=batch,
                                            counts=counts, errors=outcome.errors,
                                            size=_params(job).batch_sizes[batch])
        filled = recorded.state == "succeeded"
        if filled:
            space = find_space(session=session, name=space_name)
            space_queries.mark_filled(session=session, space_id=space.id)
        complete = recorded.state in ("succeeded", "failed")
        session.commit()
    if filled:
        caught = catch_up(runtime, space_name=space_name)
        log.info("job %d: space %s filled; %d images ingested meanwhile added, %d failed",
                 job.id, space_name, caught.added, len(caught.errors))
    if complete:
        for report in snapshot_all(runtime, space_name=space_name):
            log.info("job %d: space %s snapshot with %d vectors", job.id, report.space,
                     report.vectors)
