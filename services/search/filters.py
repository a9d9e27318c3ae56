"""Search filters on catalog fields (collection, label): run inside Milvus as a scalar filter
expression; for a FAISS replica, the search widens until k hits match or none are left. Either
way k results come back whenever k images match."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
from sqlalchemy.orm import Session

from lookalike.retrieval.index.faiss_index import SearchHits
from lookalike.services.catalog import images as image_queries
from lookalike.services.catalog.models import Image
from lookalike.services.index.backend import SpaceIndex
from lookalike.services.index.milvus_replica import MilvusReplica

WIDEN = 4  # each FAISS round asks for this many times more hits


@dataclass(frozen=True)
class HitFilter:
    """Keep only images of this collection and/or label (None: any)."""

    collection: str | None = None
    label: str | None = None

    @property
    def active(self) -> bool:
        return self.collection is not None or self.label is not None

    def expression(self) -> str:
        """The Milvus boolean expression: string literals quoted and escaped as JSON does."""
        terms = [f"{field} == {json.dumps(value)}" for field, value
                 in (("collection", self.collection), ("label", self.label)) if value is not None]
        return " and ".join(terms)

    def matches(self, row: Image) -> bool:
        return ((self.collection is None or row.collection == self.collection)
                and (self.label is None or row.label == self.label))


def filtered_search(index: SpaceIndex, session: Session, query: np.ndarray, k: int,
                    hit_filter: HitFilter) -> SearchHits:
    """Top-k of the (1, D) query among the images the filter keeps."""
    if not hit_filter.active:
        return index.search(query, k)
    if isinstance(index, MilvusReplica):
        return index.search(query, k, where=hit_filter.expression())
    total = index.ntotal
    fetch = min(total, k * WIDEN)
    while True:
        hits = index.search(query, max(fetch, 1))
        found = [int(i) for i in hits.ids[0] if i >= 0]
        rows = image_queries.images_by_ids(session=session, ids=found)
        keep = [j for j, i in enumerate(hits.ids[0])
                if i >= 0 and int(i) in rows and hit_filter.matches(rows[int(i)])][:k]
        if len(keep) == k or fetch >= total:
            return _first(hits, keep, k)
        fetch = min(total, fetch * WIDEN)


def _first(hits: SearchHits, keep: list[int], k: int) -> SearchHits:
    """The kept columns of a one-query result, padded to k."""
    out = SearchHits(scores=np.full((1, k), -np.inf, dtype=np.float32),
                     ids=np.full((1, k), -1, dtype=np.int64))
    out.scores[0, :len(keep)] = hits.scores[0, keep]
    out.ids[0, :len(keep)] = hits.ids[0, keep]
    return out
