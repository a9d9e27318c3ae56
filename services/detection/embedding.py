"""Region vectors: each stored region, cut from its image's original with a context margin,
embedded with an image space's backbone into that space's *region space*.

A region space is an ordinary space row (`SpaceOptions.regions_of` = the image space's id)
whose vectors are keyed by region id: its FAISS replicas, snapshots, Milvus collection and
follower, change log and verify are the image machinery unchanged, with region ids where
image ids were. It is made on first use, with the image space's backbone, weights and
whitening, so a query embedded by the image space lies in the same space as the regions.
Regions are embedded into the region space of every filled image space (the spaces ingest
keeps whole), when a detect job or an ingest stores them and when a reindex runs; a
region whose image is deleted, or whose detector is rerun, leaves the index with it.
"""

from __future__ import annotations

import logging
from collections import defaultdict

import numpy as np
import torch
from PIL import Image as PILImage
from sqlalchemy.orm import Session

from lookalike.retrieval.detection.boxes import Box, crop, with_margin
from lookalike.retrieval.embedding.regions import (
    TrunkTap,
    describe_boxes,
    describe_crops,
    tap_layer,
    tapped_cells,
)
from lookalike.retrieval.errors import ImageRejected, UnknownBackbone
from lookalike.retrieval.images import decode_image
from lookalike.retrieval.models.registry import get_backbone
from lookalike.services.catalog import embeddings as embedding_queries
from lookalike.services.catalog import images as image_queries
from lookalike.services.catalog import spaces as space_queries
from lookalike.services.catalog.models import Region, Space
from lookalike.services.catalog.schemas import SpaceCreate
from lookalike.services.errors import InvalidRequest, SpaceExists
from lookalike.services.runtime import Runtime

log = logging.getLogger(__name__)

SUFFIX = ":regions"
EMBED_BATCH = 32
# Region spaces made from now on weight each region's centre (a Gaussian of std 0.1 of the
# map's side) and append the block before the trunk's last downsampling to the last map
# (region_layer, "auto": tap_layer), which the regions benchmark measured best (README, "How
# a region is described"); spaces made before keep the description they were made with.
REGION_CENTRE = 0.1
AUTO_LAYER = "auto"
# ... and re-rank a query's 10 best regions by their tapped cells (region_rerank), each
# region's cells allowed to move by one place against the query's (region_shift).
REGION_RERANK = 10
REGION_SHIFT = 1


def region_space_name(space: Space) -> str:
    return f"{space.name}{SUFFIX}"


def is_region_space(space: Space) -> bool:
    return space.options.regions_of is not None


def find_region_space(session: Session, space: Space) -> Space | None:
    """The region space of an image space, or None while no region was embedded in it."""
    return space_queries.get_space(session=session, name=region_space_name(space))


def ensure_region_space(session: Session, space: Space, *,
                        margin: float | None = None,
                        description: dict[str, object] | None = None) -> Space:
    """The region space of an image space, created (in the caller's transaction) on first
    use: the image space's backbone, weights and whitening; no QE, DBA or verification.
    Its regions' centres are weighted (REGION_CENTRE), crops tap the block `tap_layer`
    picks (its width added to the dimension) and searches re-rank REGION_RERANK regions by
    it, each region's cells allowed REGION_SHIFT places of play, unless `description` says
    otherwise (SpaceOptions.region_method, region_centre, region_roi_side, region_layer: an
    index, None, or "auto"; region_rerank, region_shift)."""
    if is_region_space(space):
        raise InvalidRequest(f"space '{space.name}' is a region space already")
    found = find_region_space(session, space)
    if found is not None:
        return found
    chosen = {"region_layer": AUTO_LAYER, **(description or {})}
    if chosen["region_layer"] == AUTO_LAYER:
        chosen["region_layer"] = (_auto_layer(space) if chosen.get("region_method", "crop")
                                  == "crop" else None)
    chosen.setdefault("region_rerank", REGION_RERANK if chosen["region_layer"] is not None
                      else 0)
    chosen.setdefault("region_shift", REGION_SHIFT)
    options = type(space.options).model_validate({
        **space.options.model_dump(), "regions_of": space.id, "qe": False, "dba_n": 0,
        "verify": False, "copy_calibration": None, "region_centre": REGION_CENTRE,
        **({"region_margin": margin} if margin is not None else {}), **chosen})
    layer = options.region_layer
    extra = 0 if layer is None else _untrained_tap(space, layer).channels
    data = SpaceCreate(name=region_space_name(space), backbone=space.backbone,
                       weights_sha256=space.weights_sha256, layer=space.layer,
                       pooling=space.pooling, whitening=space.whitening, dim=space.dim + extra,
                       options=options)
    try:
        created = space_queries.create_space(session=session, data=data)
    except SpaceExists:  # another process made it meanwhile
        made = find_region_space(session, space)
        assert made is not None, "a space of that name exists"
        return made
    session.flush()
    log.info("space %s: region space %s created", space.name, created.name)
    return created


def _input_side(space: Space) -> int:
    return space.options.input_size or get_backbone(space.backbone).weights.input_size


def _auto_layer(space: Space) -> int | None:
    """The block a new region space taps (`tap_layer`), or None for a backbone whose trunk
    is no sequence of blocks (EfficientNet-Lite) or that the registry does not know (vectors
    stored by hand): its regions keep the last map alone."""
    try:
        spec = get_backbone(space.backbone)
        return tap_layer(spec.trunk(spec.builder()), side=_input_side(space))
    except (UnknownBackbone, ValueError) as error:
        log.warning("space %s: its regions describe the last map alone: %s", space.name, error)
        return None


def _untrained_tap(space: Space, layer: int) -> TrunkTap:
    """A tap on an untrained copy of the trunk: its shapes, for the region space's dim."""
    spec = get_backbone(space.backbone)
    try:
        return TrunkTap(spec.trunk(spec.builder()), layer=layer, side=_input_side(space))
    except ValueError as error:
        raise InvalidRequest(f"space '{space.name}' ({space.backbone}): {error}") from None


def describes_queries(target: Space) -> bool:
    """Whether a scope=regions query must be described as the region space describes its
    regions; False where that is how the image space embeds a whole image (a crop, uniform
    pooling, no tapped block: the image space's vector of the query serves)."""
    options = target.options
    return not (options.region_method == "crop" and options.region_centre is None
                and options.region_layer is None)


def region_tap(runtime: Runtime, space: Space, target: Space) -> TrunkTap | None:
    """The image space's trunk cut at the region space's tapped block, or None."""
    layer = target.options.region_layer
    return None if layer is None else runtime.region_tap(space, layer, side=_input_side(space))


def region_query_vector(runtime: Runtime, space: Space, target: Space,
                        data: bytes) -> np.ndarray | None:
    """The (1,D) vector of a query image described as the region space describes its
    regions (the whole query as the box), or None where that is how the image space embeds
    a whole image (`describes_queries`: the query takes the usual path)."""
    options = target.options
    if not describes_queries(target):
        return None
    decoded = decode_image(data, max_bytes=runtime.settings.max_upload_bytes,
                           max_pixels=runtime.settings.max_pixels)
    image = decoded.image.convert("RGB")
    embedder = runtime.embedder(space)
    if options.region_method == "roi-align":
        whole = Box(0.0, 0.0, float(image.width), float(image.height))
        return describe_boxes(embedder, image, [whole], side=options.region_roi_side,
                              centre=options.region_centre)
    return describe_crops(embedder, [image], centre=options.region_centre,
                          tap=region_tap(runtime, space, target))


def region_query_cells(runtime: Runtime, space: Space, target: Space,
                       data: bytes) -> torch.Tensor | None:
    """The (1,C,h,w) tapped cells of a query image, for re-ranking its best regions, or None
    where the region space does not re-rank."""
    if not target.options.region_rerank:
        return None
    decoded = decode_image(data, max_bytes=runtime.settings.max_upload_bytes,
                           max_pixels=runtime.settings.max_pixels)
    tap = region_tap(runtime, space, target)
    assert tap is not None, "SpaceOptions refuses region_rerank without region_layer"
    return tapped_cells(runtime.embedder(space), tap, [decoded.image.convert("RGB")])


def stored_region_cells(runtime: Runtime, space: Space, target: Space,
                        regions: list[Region], paths: dict[int, str]
                        ) -> dict[int, torch.Tensor]:
    """Each region's (C,h,w) tapped cells, its crop cut again (with the region margin) from
    its image's original at `paths[image_id]`; a region whose file cannot be read is left
    out (logged), so it keeps its vector's similarity."""
    tap = region_tap(runtime, space, target)
    assert tap is not None, "SpaceOptions refuses region_rerank without region_layer"
    keys: list[int] = []
    crops: list[PILImage.Image] = []
    for image_id in sorted({r.image_id for r in regions}):
        try:
            data = runtime.settings.layout.resolve(paths[image_id]).read_bytes()
            image = decode_image(data, max_bytes=runtime.settings.max_upload_bytes,
                                 max_pixels=runtime.settings.max_pixels).image.convert("RGB")
        except (KeyError, OSError, ImageRejected) as error:
            log.warning("image %d: its regions are not re-ranked: %s", image_id, error)
            continue
        for region in (r for r in regions if r.image_id == image_id):
            box = with_margin(Box(region.x0, region.y0, region.x1, region.y1),
                              width=image.width, height=image.height,
                              margin=target.options.region_margin)
            keys.append(region.id)
            crops.append(crop(image, box).convert("RGB"))
    if not crops:
        return {}
    cells = tapped_cells(runtime.embedder(space), tap, crops)
    return dict(zip(keys, cells, strict=True))


def image_space_of(session: Session, region_space: Space) -> Space:
    """The image space whose backbone a region space's vectors are made with."""
    parent = session.get(Space, region_space.options.regions_of)
    if parent is None:
        raise InvalidRequest(f"region space '{region_space.name}' lost its image space")
    return parent


def embed_regions(runtime: Runtime, *, image_ids: list[int] | None = None) -> int:
    """Embed the regions (of `image_ids`, or of the whole catalog) that lack a vector in the
    region space of each filled image space; how many vectors were written."""
    with runtime.session() as session:
        spaces = [s for s in space_queries.filled_spaces(session=session)
                  if not is_region_space(s)]
        names = [s.name for s in spaces]
        session.commit()
    return sum(embed_space_regions(runtime, space_name=name, image_ids=image_ids)
               for name in names)


def embed_space_regions(runtime: Runtime, *, space_name: str,
                        image_ids: list[int] | None = None, page: int = 500) -> int:
    """Embed the regions that the image space's region space lacks (of `image_ids` only,
    when given), a page at a time; the region space is made when regions exist."""
    written, after = 0, 0
    while True:
        with runtime.session() as session:
            space = space_queries.get_space(session=session, name=space_name)
            if space is None:
                return written
            found = find_region_space(session, space)
            lacking = (embedding_queries.regions_lacking(
                session=session, space_id=found.id, image_ids=image_ids, after=after,
                limit=page) if found is not None else _any_regions(session, image_ids, page))
            if not lacking:
                session.rollback()
                return written
            target = found or ensure_region_space(session, space)
            session.commit()
            session.refresh(space)
            session.refresh(target)
            session.expunge(space)
            session.expunge(target)
        written += _embed_page(runtime, space, target, [r for r, _ in lacking])
        after = lacking[-1][0]


def _any_regions(session: Session, image_ids: list[int] | None,
                 page: int) -> list[tuple[int, int]]:
    """Regions there are to embed before any region space exists (then it is created)."""
    from sqlalchemy import select

    query = select(Region.id, Region.image_id)
    if image_ids is not None:
        query = query.where(Region.image_id.in_(image_ids))
    return [(r, i) for r, i in session.execute(query.order_by(Region.id).limit(page))]


def _embed_page(runtime: Runtime, space: Space, target: Space, region_ids: list[int]) -> int:
    """Cut each region (with the region space's margin) from its image's original, embed
    the crops with the image space's model and write them; unreadable images are logged."""
    with runtime.read_session() as session:
        rows = list(session.get(Region, r) for r in region_ids)
        regions = [r for r in rows if r is not None]
        images = image_queries.images_by_ids(session=session,
                                             ids=sorted({r.image_id for r in regions}))
        by_image: dict[int, list[tuple[int, Box]]] = defaultdict(list)
        for r in regions:
            by_image[r.image_id].append((r.id, Box(r.x0, r.y0, r.x1, r.y1)))
        paths = {i: row.stored_path for i, row in images.items()
                 if row.status == "embedded" and row.stored_path}
    embedder = runtime.embedder(space)
    options = target.options
    keys: list[int] = []
    crops: list[PILImage.Image] = []
    described: list[np.ndarray] = []
    for image_id, boxes in sorted(by_image.items()):
        if image_id not in paths:
            continue
        try:
            data = runtime.settings.layout.resolve(paths[image_id]).read_bytes()
            decoded = decode_image(data, max_bytes=runtime.settings.max_upload_bytes,
                                   max_pixels=runtime.settings.max_pixels)
        except (OSError, ImageRejected) as error:
            log.warning("image %d: regions not embedded: %s", image_id, error)
            continue
        wide = [with_margin(box, width=decoded.width, height=decoded.height,
                            margin=options.region_margin) for _, box in boxes]
        keys.extend(region_id for region_id, _ in boxes)
        if options.region_method == "roi-align":
            described.append(describe_boxes(embedder, decoded.image.convert("RGB"), wide,
                                            side=options.region_roi_side,
                                            centre=options.region_centre))
        else:
            crops.extend(crop(decoded.image, box).convert("RGB") for box in wide)
    tap = region_tap(runtime, space, target)
    for start in range(0, len(crops), EMBED_BATCH):
        described.append(describe_crops(embedder, crops[start:start + EMBED_BATCH],
                                        centre=options.region_centre, tap=tap))
    vectors = [np.asarray(v, dtype="<f4").tobytes() for chunk in described for v in chunk]
    if not keys:
        return 0
    with runtime.session() as session:
        written = embedding_queries.add_region_embeddings(
            session=session, space_id=target.id, region_ids=keys, vectors=vectors)
        session.commit()
    return written
