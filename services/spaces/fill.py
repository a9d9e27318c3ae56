"""Filling a space: embed the catalog images it lacks from their stored files, skipping
those it already holds, so that any run can be repeated or resumed without adding twice."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from lookalike.services.catalog import embeddings as embedding_queries
from lookalike.services.catalog import images as image_queries
from lookalike.services.catalog.models import Space
from lookalike.services.runtime import Runtime
from lookalike.services.spaces.create import commit_vectors, embed_files
from lookalike.services.spaces.lookup import find_space


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
        files.append((image_id, row.stored_path))
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
