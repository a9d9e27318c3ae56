"""Region search (`scope=regions`): the query vector against the region space of the image
space, hits grouped under their image, the best region first.

The index is asked for several times k regions so that k images are left after grouping;
filters restrict the search to the regions of the images that pass them (in Milvus, on the
collection and label fields each region carries from its image, when those suffice)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from sqlalchemy import select
from sqlalchemy.orm import Session

from lookalike.retrieval.embedding.regions import cell_agreement
from lookalike.services.catalog import images as image_queries
from lookalike.services.catalog.models import Image, Region, Space
from lookalike.services.detection.embedding import find_region_space, stored_region_cells
from lookalike.services.errors import InvalidRequest
from lookalike.services.index.milvus_replica import MilvusReplica
from lookalike.services.runtime import Runtime
from lookalike.services.search.filtered import filtered_search, milvus_fields
from lookalike.services.search.filters import Filters, allowed_region_ids

SCOPES = ("images", "regions")
GROUP_OVERFETCH = 5


@dataclass(frozen=True)
class RegionHit:
    """A region that matched: its box in the image's pixels, label and detector score (None
    for a person's box), and the similarity of its vector to the query."""

    id: int
    box: tuple[float, float, float, float]
    label: str | None
    score: float | None
    detector: str
    similarity: float
    image_size: tuple[int, int] | None = None

    def to_public(self) -> dict[str, Any]:
        return {"id": self.id, "box": list(self.box), "label": self.label, "score": self.score,
                "detector": self.detector, "similarity": round(self.similarity, 6),
                "image_size": list(self.image_size) if self.image_size else None}


def check_scope(scope: str) -> str:
    if scope not in SCOPES:
        raise InvalidRequest(f"scope must be one of {', '.join(SCOPES)}; got {scope!r}")
    return scope


def search_regions(runtime: Runtime, session: Session, space: Space, vector: np.ndarray, *,
                   k: int, filters: Filters, most: int,
                   query_cells: torch.Tensor | None = None
                   ) -> list[tuple[Image, tuple[RegionHit, ...]]]:
    """Up to k (image, its matching regions best first) pairs, best image first. With the
    query's tapped cells, the region space's `region_rerank` best regions are re-scored
    (`_reranked`), however few results are asked for: fetching only `GROUP_OVERFETCH` per
    result re-ranked 5 regions for k=1, whose first hit then could differ from k=10's."""
    target = find_region_space(session, space)
    if target is None:
        raise InvalidRequest(f"space '{space.name}' has no regions indexed yet: store some "
                             "with `lookalike detect run --detector NAME` or `lookalike ingest "
                             "--detect NAME`, or search with scope=images")
    replica = runtime.replica(target, session=session)
    reranked = target.options.region_rerank if query_cells is not None else 0
    wanted = min(most, max(k * GROUP_OVERFETCH, reranked))
    where = milvus_fields(filters) if isinstance(replica, MilvusReplica) else None
    if filters.restricts and isinstance(replica, MilvusReplica) and where is not None:
        hits = replica.search(vector, wanted, where=where)  # a region's fields are its image's
    elif filters.restricts:
        hits = filtered_search(replica, vector, wanted,
                               allowed=allowed_region_ids(session, filters))
    else:
        hits = replica.search(vector, wanted)
    pairs = [(int(i), float(s)) for i, s in zip(hits.ids[0], hits.scores[0], strict=True)
             if i >= 0]
    regions = {r.id: r for r in session.scalars(
        select(Region).where(Region.id.in_([i for i, _ in pairs])))}
    images = image_queries.images_by_ids(
        session=session, ids=sorted({r.image_id for r in regions.values()}))
    if query_cells is not None and reranked:
        pairs = _reranked(runtime, space, target, pairs, query_cells, regions, images)
    grouped: dict[int, list[RegionHit]] = {}
    for region_id, similarity in pairs:
        region = regions.get(region_id)
        if region is None or region.image_id not in images:
            continue
        if images[region.image_id].status != "embedded":
            continue
        image = images[region.image_id]
        size = (image.width, image.height) if image.width and image.height else None
        grouped.setdefault(region.image_id, []).append(RegionHit(
            id=region.id, box=(region.x0, region.y0, region.x1, region.y1), label=region.label,
            score=region.score, detector=region.detector, similarity=similarity,
            image_size=size))
    return [(images[i], tuple(found)) for i, found in list(grouped.items())[:k]]


def _reranked(runtime: Runtime, space: Space, target: Space, pairs: list[tuple[int, float]],
              query_cells: torch.Tensor, regions: dict[int, Region],
              images: dict[int, Image]) -> list[tuple[int, float]]:
    """The pairs with the first `region_rerank` regions' similarity raised by how their
    tapped cells agree with the query's (cell_agreement, centre-weighted, with the space's
    `region_shift` of play), all re-sorted."""
    head = [r for r, _ in pairs[:target.options.region_rerank] if r in regions]
    paths = {i: image.stored_path for i, image in images.items() if image.stored_path}
    cells = stored_region_cells(runtime, space, target, [regions[r] for r in head], paths)
    if not cells:
        return pairs
    ids = list(cells)
    agreement = cell_agreement(query_cells, torch.stack([cells[r] for r in ids]),
                               centre=target.options.region_centre,
                               shift=target.options.region_shift)
    extra = dict(zip(ids, agreement.tolist(), strict=True))
    return sorted(((r, s + extra.get(r, 0.0)) for r, s in pairs), key=lambda p: -p[1])
