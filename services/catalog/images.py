"""Image rows: idempotent insert by sha256, lookups, listings, status changes, deletion."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from sqlalchemy import RowMapping, bindparam, delete, func, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from lookalike.services.catalog.models import (
    IMAGE_STATUSES,
    Embedding,
    Image,
    IndexChange,
    Region,
)
from lookalike.services.catalog.schemas import ImageCreate
from lookalike.services.catalog.spaces import lock_spaces
from lookalike.services.errors import ImageNotFound, InvalidStatus

logger = logging.getLogger(__name__)


def add_image(*, session: Session, data: ImageCreate) -> tuple[Image, bool]:
    """Insert an image, or return the row that already has its sha256 (created=False).

    The unique key decides, not a prior lookup: the insert runs in a savepoint, and when a
    concurrent writer got there first, only the savepoint is rolled back.
    """
    image = Image(**data.model_dump())
    try:
        with session.begin_nested():
            session.add(image)
    except IntegrityError:
        existing = get_image_by_sha(session=session, sha256=data.sha256)
        if existing is None:
            raise
        logger.debug("image %s already in the catalog as id %d", data.sha256, existing.id)
        return existing, False
    return image, True


def add_images(*, session: Session, rows: Sequence[ImageCreate]) -> dict[str, tuple[int, bool]]:
    """Insert many images at once; existing sha256 values are left alone, never duplicated.

    Returns sha256 -> (id, created). One multi-row INSERT ... ON CONFLICT DO NOTHING: the
    unique key decides under concurrency, as in `add_image`, at a fraction of the cost.
    """
    if not rows:
        return {}
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    statement = (dialect.insert(Image)
                 .on_conflict_do_nothing(index_elements=[Image.sha256])
                 .returning(Image.sha256))
    created = set(session.scalars(statement, [row.model_dump() for row in rows]))
    shas = [row.sha256 for row in rows]
    found = session.execute(select(Image.sha256, Image.id).where(Image.sha256.in_(shas)))
    ids = {sha: image_id for sha, image_id in found}
    return {sha: (ids[sha], sha in created) for sha in shas}


def get_image(*, session: Session, image_id: int) -> Image | None:
    """The image with this id, or None."""
    return session.get(Image, image_id)


def get_image_by_sha(*, session: Session, sha256: str) -> Image | None:
    """The image whose bytes have this sha256 (hex), or None."""
    return session.scalar(select(Image).where(Image.sha256 == sha256))


def images_by_shas(*, session: Session, shas: Sequence[str]) -> dict[str, Image]:
    """The images among these sha256 values that exist, keyed by sha256 (bulk dedup check)."""
    if not shas:
        return {}
    rows = session.scalars(select(Image).where(Image.sha256.in_(list(shas))))
    return {row.sha256: row for row in rows}


def images_by_ids(*, session: Session, ids: Sequence[int]) -> dict[int, Image]:
    """The images among `ids` that exist, keyed by id (to join search hits with the catalog)."""
    if not ids:
        return {}
    rows = session.scalars(select(Image).where(Image.id.in_(set(ids))))
    return {image.id: image for image in rows}


# the image columns a search answer shows (`embedded_hit_rows`, and `Hit.of` for ORM rows)
HIT_COLUMNS = ("id", "source_uri", "label", "collection", "title", "caption", "topic",
               "topic_score", "video_id", "t")
_HIT_ROWS = (select(*(getattr(Image, column) for column in HIT_COLUMNS))
             .where(Image.id.in_(bindparam("ids", expanding=True)),
                    Image.status == "embedded"))


def embedded_hit_rows(*, session: Session, ids: Sequence[int]) -> dict[int, RowMapping]:
    """What a search answer shows of each embedded image among `ids`, keyed by id: one Core
    statement, built once and run on the session's connection without ORM objects (this is
    on every search's path)."""
    if not ids:
        return {}
    rows = session.connection().execute(_HIT_ROWS, {"ids": sorted(set(ids))})
    return {row.id: row._mapping for row in rows}


def list_images(
    *,
    session: Session,
    collection: str | None = None,
    label: str | None = None,
    status: str | None = None,
    offset: int = 0,
    limit: int = 50,
) -> list[Image]:
    """A page of images in id order, optionally filtered by collection, label and status."""
    query = select(Image).order_by(Image.id).offset(offset).limit(limit)
    if collection is not None:
        query = query.where(Image.collection == collection)
    if label is not None:
        query = query.where(Image.label == label)
    if status is not None:
        query = query.where(Image.status == _checked(status))
    return list(session.scalars(query))


def count_images(*, session: Session, status: str | None = None) -> int:
    """How many images there are, optionally only those with `status`."""
    query = select(func.count()).select_from(Image)
    if status is not None:
        query = query.where(Image.status == _checked(status))
    return session.scalar(query) or 0


def ids_with_status(
    *, session: Session, status: str, first: int | None = None, last: int | None = None
) -> list[int]:
    """Ids of the images with `status`, ascending, optionally only from `first` to `last`
    (inclusive): what a job splits into pages, and one page of them."""
    query = select(Image.id).where(Image.status == _checked(status)).order_by(Image.id)
    if first is not None:
        query = query.where(Image.id >= first)
    if last is not None:
        query = query.where(Image.id <= last)
    return list(session.scalars(query))


def live_images_after(*, session: Session, after_id: int, limit: int) -> list[Image]:
    """Up to `limit` images that are not deleted, with ids above `after_id`, in id order: one
    page of a walk over every row that names stored files."""
    query = (select(Image).where(Image.status != "deleted", Image.id > after_id)
             .order_by(Image.id).limit(limit))
    return list(session.scalars(query))


def pending_images(*, session: Session, limit: int) -> list[Image]:
    """The oldest images still waiting for an embedding (what a restarted worker picks up)."""
    query = select(Image).where(Image.status == "pending").order_by(Image.id).limit(limit)
    return list(session.scalars(query))


def set_image_status(
    *, session: Session, image_id: int, status: str, error: str | None = None
) -> None:
    """Set an image's status and error text; deletion goes through `mark_image_deleted`."""
    if _checked(status) == "deleted":
        raise InvalidStatus("status 'deleted' is set by mark_image_deleted, which also unindexes")
    image = session.get(Image, image_id)
    if image is None:
        raise ImageNotFound(f"no image with id {image_id}")
    image.status = status
    image.error = error
    session.flush()


def lock_images(*, session: Session, image_ids: Sequence[int]) -> list[Image]:
    """Lock these image rows (those that exist) in id order until the transaction ends, and
    read them afresh. A delete's file removal and an ingest's commit both take the lock, so
    whether a live row still names a stored file is decided by one of them at a time. On
    SQLite the write transaction (BEGIN IMMEDIATE) is that lock already."""
    if not image_ids:
        return []
    query = (select(Image).where(Image.id.in_(list(image_ids))).order_by(Image.id)
             .with_for_update(key_share=True).execution_options(populate_existing=True))
    return list(session.scalars(query))


def hold_image_writes(*, session: Session) -> None:
    """Hold off every insert and update of image rows until the transaction ends: removing
    files that no row names needs it, so that no ingest names one between the check and the
    removal. PostgreSQL: a SHARE lock on the table; SQLite: the write transaction (BEGIN
    IMMEDIATE), begun here."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("LOCK TABLE image IN SHARE MODE"))
    else:
        session.connection()


def mark_image_deleted(*, session: Session, image_id: int) -> bool:
    """Mark an image deleted and drop its embeddings and regions, logging one remove per space
    it was in.

    Returns False when the image does not exist or was already deleted. The image row is
    locked first (then the spaces, in id order), the same order `add_embeddings` uses.
    """
    locked = select(Image).where(Image.id == image_id).with_for_update()
    image = session.scalars(locked.execution_options(populate_existing=True)).one_or_none()
    if image is None or image.status == "deleted":
        return False
    # (space, region) pairs: region None for the image's own vector, a region id in a
    # region space, whose replicas remove each of the image's regions.
    in_spaces = (select(Embedding.space_id, Embedding.region_id)
                 .where(Embedding.image_id == image_id).distinct())
    held = sorted(((s, r) for s, r in session.execute(in_spaces)),
                  key=lambda pair: (pair[0], pair[1] or 0))
    lock_spaces(session=session, space_ids=sorted({s for s, _ in held}))
    session.execute(delete(Embedding).where(Embedding.image_id == image_id))
    session.execute(delete(Region).where(Region.image_id == image_id))
    session.add_all(IndexChange(space_id=s, image_id=image_id, region_id=r, op="remove")
                    for s, r in held)
    image.status = "deleted"
    session.flush()
    return True


def captioned_images(*, session: Session, collection: str | None = None,
                     labelled: bool = False) -> list[tuple[int, str, str | None]]:
    """(id, title and caption as one text, label) of live images with words, in id order;
    with `labelled`, only those that also have a label."""
    query = (select(Image.id, Image.title, Image.caption, Image.label)
             .where(Image.status == "embedded")
             .where((Image.caption.is_not(None)) | (Image.title.is_not(None)))
             .order_by(Image.id))
    if collection is not None:
        query = query.where(Image.collection == collection)
    if labelled:
        query = query.where(Image.label.is_not(None))
    return [(image_id, " ".join(part for part in (title, caption) if part), label)
            for image_id, title, caption, label in session.execute(query)]


def captioned_ids(*, session: Session, first: int | None = None,
                  last: int | None = None) -> list[int]:
    """Ids of the live images with a title or caption, ascending, optionally only from
    `first` to `last` (inclusive): what a text-apply job splits into pages, and one page."""
    query = (select(Image.id).where(Image.status == "embedded")
             .where((Image.caption.is_not(None)) | (Image.title.is_not(None)))
             .order_by(Image.id))
    if first is not None:
        query = query.where(Image.id >= first)
    if last is not None:
        query = query.where(Image.id <= last)
    return list(session.scalars(query))


def set_words(*, session: Session, image_id: int, values: dict[str, str | None]) -> Image:
    """Set an image's title and/or caption (None clears one); the topic a text model gave
    the old words is cleared with them. ImageNotFound for an unknown or deleted image."""
    image = session.get(Image, image_id)
    if image is None or image.status == "deleted":
        raise ImageNotFound(f"no image with id {image_id}")
    for name in ("title", "caption"):
        if name in values:
            setattr(image, name, values[name])
    image.topic, image.topic_score = None, None
    session.flush()
    return image


def set_topics(*, session: Session, topics: dict[int, tuple[str, float]]) -> None:
    """Record the topic (and its probability) a text model gave each image's words."""
    for image_id, (topic, score) in topics.items():
        image = session.get(Image, image_id)
        if image is not None:
            image.topic, image.topic_score = topic, score
    session.flush()


def _checked(status: str) -> str:
    """`status` if it is one the catalog knows, else InvalidStatus naming the allowed ones."""
    if status not in IMAGE_STATUSES:
        raise InvalidStatus(
            f"unknown image status {status!r}; allowed: {', '.join(IMAGE_STATUSES)}"
        )
    return status


def labelled_images(*, session: Session, collection: str | None = None
                    ) -> list[tuple[int, str, str]]:
    """(id, stored file, label) of every embedded image that has a label, in id order: what a
    training job learns from."""
    query = (select(Image.id, Image.stored_path, Image.label)
             .where(Image.status == "embedded", Image.label.is_not(None),
                    Image.stored_path.is_not(None))
             .order_by(Image.id))
    if collection is not None:
        query = query.where(Image.collection == collection)
    return [(row[0], str(row[1]), str(row[2])) for row in session.execute(query)]


def stored_images(*, session: Session, collection: str | None = None) -> list[tuple[int, str]]:
    """(id, stored file) of every embedded image, labelled or not, in id order: what a
    self-supervised training job learns from."""
    query = (select(Image.id, Image.stored_path)
             .where(Image.status == "embedded", Image.stored_path.is_not(None))
             .order_by(Image.id))
    if collection is not None:
        query = query.where(Image.collection == collection)
    return [(row[0], str(row[1])) for row in session.execute(query)]
