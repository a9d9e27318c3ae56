"""Filling a space and keeping it filled: embed the catalog images it lacks from their
stored files, skipping those it already holds, so that any run can be repeated or resumed
without adding twice.

A space is *filled* once it has held the whole catalog: it became the default (which ingest
writes into), or a reindex job over it succeeded (`catalog.spaces.mark_filled`). Ingest
writes each new image's vector in the space it embeds with and, once that is committed,
embeds the image into every other filled space (`follow`). The reindex job that fills a
space commits the mark first and then embeds what the space still lacks (`catch_up`): the
images ingested while it ran, which its pages, listed at submission, do not hold. Each side
reads after it commits, so of an ingest and a job finishing together one always sees the
other's write: the image is either listed by the catch-up or followed into the space. A
process that dies between its commit and the follow-up leaves the space lagging, which
`spaces list` shows and a reindex (or switching to the space) repairs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from lookalike.services.catalog import embeddings as embedding_queries
from lookalike.services.catalog import images as image_queries
from lookalike.services.catalog import spaces as space_queries
from lookalike.services.catalog.models import Space
from lookalike.services.errors import SpaceNotFound
from lookalike.services.runtime import Runtime
from lookalike.services.spaces.create import commit_vectors, embed_files
from lookalike.services.spaces.lookup import find_space

log = logging.getLogger(__name__)


@dataclass
class PageOutcome:
    """What one page of image ids gave: vectors added, already there, and failures."""

    added: int = 0
    present: int = 0
    errors: list[str] = field(default_factory=list)


def embed_missing(runtime: Runtime, *, space_name: str, image_ids: list[int]) -> PageOutcome:
    """Embed those of `image_ids` that the space lacks (deleted images are passed over)."""
    with runtime.session() as session:
        space = find_space(session=session, name=space_name)
        present = embedding_queries.embedded_among(session=session, space_id=space.id,
                                                   image_ids=image_ids)
        rows = image_queries.images_by_ids(
            session=session, ids=[i for i in image_ids if i not in present])
        session.expunge(space)
    outcome = PageOutcome(present=len(present))
    files: list[tuple[int, str]] = []
    for image_id, row in sorted(rows.items()):
        if row.status == "deleted":
            continue
        if not row.stored_path:
            outcome.errors.append(f"image {image_id}: no stored file to embed")
            continue
        files.append((image_id, str(runtime.settings.layout.resolve(row.stored_path))))
    if files:
        outcome.added = _embed(runtime, space, files, outcome.errors)
    return outcome


def _embed(runtime: Runtime, space: Space, files: list[tuple[int, str]],
           errors: list[str]) -> int:
    """Embed (image id, stored file) pairs and commit them in one transaction; how many."""
    ids: list[int] = []
    vectors: list[bytes] = []
    for key, vector, prepared in embed_files(runtime, runtime.embedder(space), files):
        if vector is None:
            errors.append(f"image {key}: "
                          f"{prepared.error if prepared is not None else 'internal error'}")
            continue
        ids.append(key)
        vectors.append(np.asarray(vector, dtype="<f4").tobytes())
    return commit_vectors(runtime, space, ids, vectors)


def catch_up(runtime: Runtime, *, space_name: str) -> PageOutcome:
    """Embed every embedded catalog image that the space lacks, a page of
    `job_batch_size` images per transaction; what it added and what failed."""
    total = PageOutcome()
    with runtime.read_session() as session:
        space_id = find_space(session=session, name=space_name).id
    after = 0
    while True:
        with runtime.read_session() as session:
            ids = embedding_queries.missing_image_ids(
                session=session, space_id=space_id, after=after,
                limit=runtime.settings.job_batch_size)
        if not ids:
            return total
        page = embed_missing(runtime, space_name=space_name, image_ids=ids)
        total.added += page.added
        total.errors += page.errors
        after = ids[-1]


def follow(runtime: Runtime, *, image_ids: list[int], written: int) -> None:
    """Embed just-ingested images into every filled space but `written` (the space the
    ingest embedded them with), in pages of `job_batch_size`; images a space already holds
    are skipped, so following a re-ingested image repairs a space an interruption left
    short of it."""
    if not image_ids:
        return
    with runtime.read_session() as session:
        names = [space.name for space in space_queries.filled_spaces(session=session)
                 if space.id != written]
    size = runtime.settings.job_batch_size
    for name in names:
        for start in range(0, len(image_ids), size):
            try:
                page = embed_missing(runtime, space_name=name,
                                     image_ids=image_ids[start:start + size])
            except SpaceNotFound:
                break  # deleted meanwhile
            for error in page.errors:
                log.warning("space %s lacks a new image: %s", name, error)
