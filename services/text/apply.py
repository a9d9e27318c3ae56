"""Text-apply jobs: give every captioned image in the catalog its topic, page by page,
resumably.

Like a reindex job, the pages are fixed at submission as (first, last) ids of the images
captioned then, so the job row stays small for any catalog. The job names the default text
model of that moment, so every page uses the same model even when the default changes while
it runs. Setting a topic twice gives the same topic, so a redelivered or retried page is
harmless; images captioned after submission got their topic at ingest or on edit.
"""

from __future__ import annotations

from lookalike.services.catalog import images as image_queries
from lookalike.services.catalog import jobs as job_queries
from lookalike.services.catalog import textmodels
from lookalike.services.catalog.documents import TextApplyParams
from lookalike.services.catalog.models import Job
from lookalike.services.runtime import Runtime
from lookalike.services.text.topics import give_topics

KIND = "text-apply"


def create_text_apply_job(runtime: Runtime, *, model_name: str | None = None) -> Job:
    """A queued job over the images captioned now, in pages of `job_batch_size` ids, with
    the named text model or the default one; TextModelNotFound when there is none."""
    size = runtime.settings.job_batch_size
    with runtime.session() as session:
        model = textmodels.find_text_model(session=session, name=model_name)
        ids = image_queries.captioned_ids(session=session)
        pages = [ids[start:start + size] for start in range(0, len(ids), size)]
        params = TextApplyParams(text_model=model.name, batch_size=size,
                                 pages=[(page[0], page[-1]) for page in pages],
                                 batch_sizes=[len(page) for page in pages])
        job = job_queries.create_job(session=session, kind=KIND, params=params,
                                     total=len(ids), batches=len(pages))
        session.commit()
    return job


def run_text_apply_batch(runtime: Runtime, job: Job, batch: int) -> None:
    """Give one page's captioned images (those still captioned) their topic and record it
    in the same transaction; `added` counts the images given a topic."""
    params = job.params
    assert isinstance(params, TextApplyParams), f"job {job.id} is not a text-apply job"
    first, last = params.pages[batch]
    with runtime.session() as session:
        model = textmodels.find_text_model(session=session, name=params.text_model)
        ids = image_queries.captioned_ids(session=session, first=first, last=last)
        given = give_topics(runtime, session, ids, model=model)
        job_queries.record_batch(session=session, job_id=job.id, batch=batch,
                                 counts={"added": given}, errors=[],
                                 size=params.batch_sizes[batch])
        session.commit()
