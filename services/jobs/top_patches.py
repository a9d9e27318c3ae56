"""Top-patches jobs: one pass over the catalog through a space's backbone, keeping the 9
image patches that excite one channel of one block most.

A job of one batch, so that a pass over a large catalog runs where jobs run (a worker, or the
server's background thread) instead of inside a request. Its PNG and the (image id, response)
list go to the job's folder; the job's result records the PNG home-relative and the list.
"""

from __future__ import annotations

import json
import logging

from lookalike.retrieval import atomic
from lookalike.services.catalog.documents import TopPatchesParams
from lookalike.services.catalog.models import Job
from lookalike.services.errors import InvalidRequest
from lookalike.services.jobs.single import create_single_batch_job, finish_single_batch
from lookalike.services.runtime import Runtime
from lookalike.services.spaces.visualize import check_unit, write_top_patches

log = logging.getLogger(__name__)

KIND = "top-patches"
PNG = "top-patches.png"
RANKING = "top-patches.json"


def create_top_patches_job(runtime: Runtime, *, space_name: str | None, layer: int,
                           channel: int, limit: int) -> Job:
    """A queued job of one batch, once the space, its block `layer` and the block's `channel`
    exist (a bad one is refused now, not when the job runs)."""
    if limit < 1:
        raise InvalidRequest(f"limit must be at least 1 image, not {limit}")
    name = check_unit(runtime, space_name=space_name, layer=layer, channel=channel)
    return create_single_batch_job(runtime, kind=KIND, params=TopPatchesParams(
        space=name, layer=layer, channel=channel, limit=limit))


def run_top_patches_batch(runtime: Runtime, job: Job, batch: int) -> None:
    """Rank the catalog, write the PNG and the ranking into the job's folder, record both."""
    params = job.params
    assert isinstance(params, TopPatchesParams), f"job {job.id} is not a top-patches job"
    folder = runtime.settings.layout.job(job.id)
    png, top = write_top_patches(runtime, space_name=params.space, layer=params.layer,
                                 channel=params.channel, out=folder / PNG, limit=params.limit)
    ranking = [{"image_id": image_id, "response": value} for image_id, value in top]
    atomic.write_atomic(folder / RANKING,
                        lambda handle: handle.write(json.dumps(ranking).encode()))
    finish_single_batch(runtime, job, batch, {"patches": runtime.settings.layout.stored(png),
                                              "top": top})
    log.info("job %d: top patches of %s block %d channel %d written", job.id, params.space,
             params.layer, params.channel)
