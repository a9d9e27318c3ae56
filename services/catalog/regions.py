"""Regions: boxes on images from detectors or people, added, listed and removed with the image."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from lookalike.services.catalog.embeddings import remove_region_embeddings
from lookalike.services.catalog.models import Image, Region
from lookalike.services.catalog.schemas import RegionCreate
from lookalike.services.errors import ImageNotFound, InvalidRequest


def add_regions(*, session: Session, image_id: int,
                regions: Sequence[RegionCreate]) -> list[Region]:
    """Add boxes to a live image (flushed, ids assigned); each must lie inside the image."""
    image = session.get(Image, image_id)
    if image is None or image.status == "deleted":
        raise ImageNotFound(f"image {image_id} does not exist or was deleted")
    rows = [Region(image_id=image_id, **_checked(data, image).model_dump()) for data in regions]
    session.add_all(rows)
    session.flush()
    return rows


def image_regions(*, session: Session, image_id: int,
                  detector: str | None = None) -> list[Region]:
    """An image's regions, best score first (user boxes, without a score, last), then by id."""
    query = select(Region).where(Region.image_id == image_id)
    if detector is not None:
        query = query.where(Region.detector == detector)
    rows = session.scalars(query.order_by(Region.id)).all()
    return sorted(rows, key=lambda row: -(row.score if row.score is not None else -1.0))


def replace_regions(*, session: Session, image_id: int, detector: str,
                    regions: Sequence[RegionCreate]) -> list[Region]:
    """One detector's boxes on an image, replacing what that detector found before (their
    vectors leave the region spaces, logged as removes, so replicas drop them too)."""
    # The image row first, as deleting an image and writing vectors lock it, then spaces.
    session.execute(select(Image.id).where(Image.id == image_id).with_for_update(key_share=True))
    old = select(Region.id).where(Region.image_id == image_id, Region.detector == detector)
    remove_region_embeddings(session=session, region_ids=list(session.scalars(old)))
    session.execute(delete(Region).where(Region.image_id == image_id,
                                         Region.detector == detector))
    return add_regions(session=session, image_id=image_id, regions=regions)


def delete_image_regions(*, session: Session, image_id: int) -> int:
    """Remove every region of an image (it is being deleted); returns how many went."""
    result = session.execute(delete(Region).where(Region.image_id == image_id))
    return int(getattr(result, "rowcount", 0) or 0)


def _checked(data: RegionCreate, image: Image) -> RegionCreate:
    """The box itself, once it is non-empty and inside the image's known size."""
    if data.x1 <= data.x0 or data.y1 <= data.y0:
        raise InvalidRequest(f"box ({data.x0}, {data.y0}, {data.x1}, {data.y1}) is empty or "
                             "inverted: x0 < x1 and y0 < y1 are needed")
    width, height = image.width, image.height
    if width is not None and height is not None and (data.x1 > width or data.y1 > height):
        raise InvalidRequest(f"box ({data.x0}, {data.y0}, {data.x1}, {data.y1}) reaches "
                             f"outside image {image.id} of {width}x{height} pixels")
    return data
