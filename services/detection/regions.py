"""Regions in the service: an image's stored boxes, and a query cut to a person's box."""

from __future__ import annotations

import io
from dataclasses import asdict
from typing import Any

from lookalike.retrieval.detection.boxes import Box, crop, parse_box, with_margin
from lookalike.retrieval.images import decode_image
from lookalike.services.catalog.regions import add_regions, image_regions
from lookalike.services.catalog.schemas import RegionCreate
from lookalike.services.detection.embedding import embed_regions
from lookalike.services.ingest.images import get_live_image, original_file
from lookalike.services.runtime import Runtime

USER = "user"  # the detector name of a box a person gave


def regions_of(runtime: Runtime, image_id: int, *,
               detector: str | None = None) -> dict[str, Any]:
    """A live image's size and regions (best first), as the API answers them."""
    image = get_live_image(runtime, image_id)
    with runtime.read_session() as session:
        rows = image_regions(session=session, image_id=image_id, detector=detector)
        regions = [{"id": r.id, "box": [r.x0, r.y0, r.x1, r.y1], "label": r.label,
                    "score": r.score, "detector": r.detector,
                    "created_at": r.created_at.isoformat()} for r in rows]
    return {"image_id": image_id, "width": image.width, "height": image.height,
            "regions": regions}


def box_public(box: Box) -> dict[str, Any]:
    """A found box as the API answers it: `box` [x0, y0, x1, y1], label and score."""
    values = asdict(box)
    return {"box": [values.pop(k) for k in ("x0", "y0", "x1", "y1")], **values}


def cropped_query(runtime: Runtime, box_text: str, *, data: bytes | None = None,
                  image_id: int | None = None, margin: float = 0.0) -> bytes:
    """PNG bytes of the query image (upload bytes, or a catalogued image's original) cut to
    the box `x0,y0,x1,y1` given in its own pixels, grown by `margin` of its size on each
    side (as stored regions are cut); InvalidBox says what is wrong with it."""
    if image_id is not None:
        path, _ = original_file(runtime, image_id)
        data = path.read_bytes()
    settings = runtime.settings
    decoded = decode_image(data or b"", max_bytes=settings.max_upload_bytes,
                           max_pixels=settings.max_pixels)
    box = parse_box(box_text, width=decoded.width, height=decoded.height)
    if margin:
        box = with_margin(box, width=decoded.width, height=decoded.height, margin=margin)
    buffer = io.BytesIO()
    crop(decoded.image, box).save(buffer, format="PNG")
    return buffer.getvalue()


def check_user_box(runtime: Runtime, data: bytes, box_text: str) -> Box:
    """A person's box on upload bytes, checked against the image before anything is stored
    (InvalidBox says what is wrong with it)."""
    settings = runtime.settings
    decoded = decode_image(data, max_bytes=settings.max_upload_bytes,
                           max_pixels=settings.max_pixels)
    return parse_box(box_text, width=decoded.width, height=decoded.height)


def add_user_box(runtime: Runtime, image_id: int, box: Box, *, label: str | None = None
                 ) -> dict[str, Any]:
    """Store a person's box on a catalogued image as a `user` region and embed it into the
    region spaces; the region as `GET /v1/images/{id}/regions` lists it."""
    with runtime.session() as session:
        region = add_regions(session=session, image_id=image_id, regions=[RegionCreate(
            x0=box.x0, y0=box.y0, x1=box.x1, y1=box.y1, label=label, detector=USER)])[0]
        session.commit()
        public = {"id": region.id, "box": [region.x0, region.y0, region.x1, region.y1],
                  "label": region.label, "score": region.score, "detector": region.detector}
    embed_regions(runtime, image_ids=[image_id])
    return public
