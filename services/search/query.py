"""Search: query image, image URL or catalogued id -> vector -> FAISS top-k -> joined with
the catalog."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from PIL.Image import Image as PILImage
from sqlalchemy.orm import Session

from lookalike.retrieval.errors import IndexIdNotFound
from lookalike.services.catalog import embeddings as embedding_queries
from lookalike.services.catalog import images as image_queries
from lookalike.services.catalog.documents import SpaceOptions
from lookalike.services.catalog.fulltext import TextMatch, match_captions
from lookalike.services.catalog.images import HIT_COLUMNS
from lookalike.services.catalog.models import Image, Space
from lookalike.services.detection.embedding import (
    find_region_space,
    region_query_cells,
    region_query_vector,
)
from lookalike.services.detection.regions import cropped_query
from lookalike.services.errors import ImageNotFound, InvalidRequest
from lookalike.services.index.backend import SpaceIndex
from lookalike.services.index.replicas import IndexReplica
from lookalike.services.ingest.fetch import fetch_bytes
from lookalike.services.ingest.images import original_file
from lookalike.services.ingest.prepare import decode_for_model, prepare_config
from lookalike.services.runtime import Runtime
from lookalike.services.search.dba import dba_plan, dba_search
from lookalike.services.search.expansion import expand_query, qe_enabled
from lookalike.services.search.filtered import restricted_search
from lookalike.services.search.filters import (
    Filters,
    allowed_ids,
    check_filters,
    facet_counts,
)
from lookalike.services.search.moments import has_clip, refine_enabled, refined_moment
from lookalike.services.search.regions import RegionHit, check_scope, search_regions
from lookalike.services.search.verify import (
    decide,
    decode_query,
    margin_fetch,
    margin_reference,
    stored_image,
    verify_enabled,
    verify_hits,
)
from lookalike.services.search.videos import VideoRef, fetch_size, with_videos
from lookalike.services.spaces.lookup import find_space

MAX_K = 1000
REGION_MARGIN = SpaceOptions().region_margin
NO_FILTERS = Filters()
EXACT_FACTORY = "Flat"


@dataclass(frozen=True)
class Hit:
    image_id: int
    score: float
    source: str
    label: str | None
    collection: str | None
    title: str | None = None
    caption: str | None = None
    topic: str | None = None
    topic_score: float | None = None
    inliers: int | None = None
    is_copy: bool | None = None
    video_id: int | None = None
    t: float | None = None
    video: VideoRef | None = None
    regions: tuple[RegionHit, ...] = ()

    @classmethod
    def of(cls, image: Image, score: float) -> Hit:
        """A hit from an ORM image: the same columns as `of_row`."""
        return cls.of_row({column: getattr(image, column) for column in HIT_COLUMNS}, score)

    @classmethod
    def of_row(cls, row: Mapping[str, Any], score: float) -> Hit:
        """A hit from `embedded_hit_rows`' columns (no ORM object built)."""
        return cls(image_id=row["id"], score=score, source=row["source_uri"],
                   label=row["label"], collection=row["collection"], title=row["title"],
                   caption=row["caption"], topic=row["topic"], topic_score=row["topic_score"],
                   video_id=row["video_id"], t=row["t"])


@dataclass(frozen=True)
class SearchResult:
    space: str
    took_ms: float
    results: list[Hit]
    qe: bool = False
    dba: bool = False
    mode: str = "image"
    facets: dict | None = None
    verified: bool = False

    def to_public(self) -> dict:
        """The JSON answer shared by the API and `lookalike search --json`."""
        return {
            "space": self.space,
            "took_ms": round(self.took_ms, 3),
            "qe": self.qe,
            "dba": self.dba,
            "mode": self.mode,
            "facets": self.facets,
            "verified": self.verified,
            "results": [
                {"image_id": hit.image_id, "score": round(hit.score, 6), "source": hit.source,
                 "label": hit.label, "collection": hit.collection, "title": hit.title,
                 "caption": hit.caption, "topic": hit.topic, "topic_score": hit.topic_score,
                 "inliers": hit.inliers, "is_copy": hit.is_copy,
                 "thumbnail_url": f"/v1/images/{hit.image_id}/thumbnail",
                 "video": hit.video.to_public() if hit.video is not None else None,
                 "region": hit.regions[0].to_public() if hit.regions else None,
                 "regions": ([region.to_public() for region in hit.regions] if hit.regions
                             else None)}
                for hit in self.results
            ],
        }


def _region_query(runtime: Runtime, session: Session, space: Space, data: bytes, *,
                  scope: str) -> tuple[np.ndarray | None, torch.Tensor | None]:
    """A query for scope=regions described as the region space describes its regions, where
    that differs from how the image space embeds a whole image (else None), and its tapped
    cells where the region space re-ranks (else None)."""
    target = find_region_space(session, space) if scope == "regions" else None
    if target is None:
        return None, None
    return (region_query_vector(runtime, space, target, data),
            region_query_cells(runtime, space, target, data))


def _described_apart(session: Session, space: Space) -> bool:
    """Whether the space's region vectors are wider than its image vectors (a tapped block),
    so a catalogued query image's stored vector cannot be searched there and its original
    is described again; region spaces of the image space's dimension take the stored one."""
    target = find_region_space(session, space)
    return target is not None and target.dim != space.dim


def _check_k(k: int) -> None:
    if not 1 <= k <= MAX_K:
        raise InvalidRequest(f"k must be between 1 and {MAX_K}, got {k}")


def embed_query(runtime: Runtime, space: Space, data: bytes) -> np.ndarray:
    """The (1, D) vector of query bytes, validated exactly as an upload is; nothing is stored.
    Decoded in this thread, embedded in a model call shared with concurrent queries."""
    batcher = runtime.query_batcher(space)
    with batcher.ticket() as ticket:
        _, tensor = decode_for_model(data, config=prepare_config(runtime, batcher.embedder))
        return ticket.embed(tensor)


def search_vector(runtime: Runtime, *, space_name: str | None, k: int,
                  query: bytes | None = None, image_id: int | None = None,
                  url: str | None = None, qe: bool | None = None,
                  dba: bool | None = None, filters: Filters = NO_FILTERS,
                  facets: bool | None = None, verify: bool | None = None,
                  group_videos: bool = True, box: str | None = None,
                  scope: str = "images", refine_moment: bool | None = None) -> SearchResult:
    """Top-k catalogued images most like the query bytes, the image at `url` (fetched under
    the URL fetch rules, services/ingest/fetch.py) or the catalogued image `image_id`; `qe`
    and `dba` switch α-query expansion and database-side augmentation on or off (None: the
    space's default). The time taken includes the download.

    `filters` (topic, collection, label, caption words) RESTRICT the similarity search to
    the images that pass them, inside the index search, so k results come back whenever k
    pass (with DBA, its shortlist is so restricted). The answer holds facet counts when
    `facets` (None: when the search is filtered; counting is a scan of the catalog).

    `verify` (None: the space's default) re-ranks the space's `verify_n` best candidates by
    local-feature inliers (services/search/verify.py) before the top k are kept; every result
    carries `is_copy` when the space has a copy calibration. Frames of one video fold into
    one hit, the best frame first, unless not `group_videos`; when grouped, the best clip's
    moment is then re-ranked among its frames by registering the still onto them
    (services/search/moments.py) unless `refine_moment` is False (None: the setting).

    `box` (x0,y0,x1,y1 in the query image's pixels) searches with that region of the query
    image alone: it is cut out and embedded like an upload.

    `scope` "regions" searches the space's region vectors instead (services/search/regions):
    each result is an image with its matching regions, the best first; QE, DBA and
    verification are whole-image methods and stay off. With `box`, the query is cut with the
    region margin that stored regions are cut with, and a catalogued `image_id` is its stored
    vector, or its stored original described as regions are where the region vectors are
    wider than the image space's (a tapped block)."""
    _check_k(k)
    check_scope(scope)
    started = time.perf_counter()
    if url is not None:
        query = fetch_bytes(url, settings=runtime.settings)
    if box is not None:
        margin = REGION_MARGIN if scope == "regions" else 0.0
        query = cropped_query(runtime, box, data=query, image_id=image_id, margin=margin)
        image_id = None
    with runtime.read_session() as session:
        check_filters(session, filters)
        space = runtime.fresh(("space", space_name),
                              lambda: find_space(session=session, name=space_name),
                              session=session)
        if scope == "regions" and image_id is not None and _described_apart(session, space):
            query, image_id = original_file(runtime, image_id)[0].read_bytes(), None
        cells: torch.Tensor | None = None  # a region query's tapped cells, to re-rank
        if image_id is None:
            described, cells = _region_query(runtime, session, space, query or b"",
                                             scope=scope)
            vector = (described if described is not None
                      else embed_query(runtime, space, query or b""))
        replica = runtime.replica(space, session=session)
        if image_id is not None:
            vector = _query_vector(session, space, replica, image_id)
        if scope == "regions":
            found = search_regions(runtime, session, space, vector, k=k, filters=filters,
                                   most=MAX_K, query_cells=cells)
            results = [replace(Hit.of(image, regions[0].similarity), regions=regions)
                       for image, regions in found]
            results = with_videos(session, results, group=False, k=k)
            counts = facet_counts(session, filters) if _wants_facets(facets, filters) else None
            return SearchResult(space=space.name, results=results, facets=counts,
                                took_ms=(time.perf_counter() - started) * 1000,
                                mode="regions+filters" if filters.restricts else "regions")
        use_qe = qe_enabled(space, qe)
        plan = dba_plan(space, dba=dba, qe=use_qe)
        use_verify = verify_enabled(space, verify)
        calibration = space.options.copy_calibration
        fetch = max(k, space.options.verify_n) if use_verify else k
        fetch = max(fetch, margin_fetch(calibration))
        search = replica.search
        wanted = fetch_size(runtime, session, fetch, group=group_videos, most=MAX_K)
        if filters.restricts:
            search = restricted_search(replica, session, filters)
        if plan is not None:
            hits = dba_search(replica, vector, wanted, plan, shortlist_search=search)
        else:
            hits = search(expand_query(replica, space, vector) if use_qe else vector, wanted)
        ids = [int(i) for i in hits.ids[0] if i >= 0]
        rows = runtime.hit_rows(session, ids)
        results = [Hit.of_row(rows[i], float(s))
                   for i, s in zip(hits.ids[0], hits.scores[0], strict=True) if i in rows]
        results = with_videos(session, results, group=group_videos, k=fetch)
        counts = facet_counts(session, filters) if _wants_facets(facets, filters) else None
    image: PILImage | None = None
    if use_verify:
        image = _query_image(runtime, query, image_id)
        results = verify_hits(runtime, image, results)
    reference = margin_reference(calibration, results, query_id=image_id)
    results = results[:k]
    if group_videos and refine_enabled(runtime, refine_moment) and has_clip(results):
        if image is None:
            image = _query_image(runtime, query, image_id)
        with runtime.read_session() as session:
            results = refined_moment(runtime, session, space, vector, image, results)
    results = decide(calibration, results, reference=reference, query_id=image_id)
    return SearchResult(space=space.name, took_ms=(time.perf_counter() - started) * 1000,
                        results=results, qe=use_qe, dba=plan is not None, facets=counts,
                        mode="image+filters" if filters.restricts else "image",
                        verified=use_verify)


def _query_image(runtime: Runtime, query: bytes | None, image_id: int | None) -> PILImage:
    """The query as pixels, for local features: the stored original of a catalogued id."""
    return (stored_image(runtime, image_id) if image_id is not None
            else decode_query(runtime, query or b""))


def search_text(runtime: Runtime, *, k: int, filters: Filters,
                facets: bool | None = None) -> SearchResult:
    """The k live images whose title or caption best match `filters.text` (every word, the
    database's full-text ranking), with the other filters applied, and facet counts (unless
    `facets` is False)."""
    _check_k(k)
    started = time.perf_counter()
    assert filters.text is not None, "a text search needs words"
    with runtime.read_session() as session:
        check_filters(session, filters)
        matches = _caption_matches(session, filters, k)
        rows = image_queries.images_by_ids(session=session, ids=[m.image_id for m in matches])
        results = [Hit.of(rows[m.image_id], m.rank) for m in matches if m.image_id in rows]
        results = with_videos(session, results, group=False, k=k)
        counts = facet_counts(session, filters) if _wants_facets(facets, filters) else None
    return SearchResult(space="", took_ms=(time.perf_counter() - started) * 1000,
                        results=results, facets=counts, mode="text")


def _caption_matches(session: Session, filters: Filters, k: int) -> list[TextMatch]:
    """The k best caption matches; with `video_label`, among frames of such videos only (the
    equalities on image columns go into the full-text query, the video label after it)."""
    assert filters.text is not None, "a text search needs words"
    if filters.video_label is None:
        return match_captions(session=session, query=filters.text, limit=k,
                              filters=filters.columns())
    allowed = set(allowed_ids(session, filters).tolist())
    matches = match_captions(session=session, query=filters.text, limit=MAX_K,
                             filters=filters.columns())
    return [match for match in matches if match.image_id in allowed][:k]


def _wants_facets(facets: bool | None, filters: Filters) -> bool:
    """Facet counts scan every candidate: an unfiltered search counts only when asked."""
    return filters.restricts if facets is None else facets


def _query_vector(session, space: Space, replica: SpaceIndex, image_id: int) -> np.ndarray:
    """The (1, D) vector of a catalogued image: read from a FAISS replica, just brought up to
    the catalog, when its index keeps vectors exactly (Flat); else from the catalog, since
    compressed codes give back only an approximation (and Milvus is a network call away)."""
    if space.options.index_factory != EXACT_FACTORY or not isinstance(replica, IndexReplica):
        return _stored_vector(session, space, image_id)
    try:
        return replica.reconstruct(image_id).reshape(1, space.dim)
    except IndexIdNotFound:
        raise ImageNotFound(f"image {image_id} has no vector in space '{space.name}' "
                            "(unknown, deleted or not embedded)") from None


def _stored_vector(session, space: Space, image_id: int) -> np.ndarray:
    blob = embedding_queries.get_vector(session=session, space_id=space.id, image_id=image_id)
    if blob is None:
        raise ImageNotFound(f"image {image_id} has no vector in space '{space.name}' "
                            "(unknown, deleted or not embedded)")
    return np.frombuffer(blob, dtype="<f4").reshape(1, space.dim).astype(np.float32)
