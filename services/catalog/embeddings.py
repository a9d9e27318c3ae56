"""Vectors per (space, image) and the change log that index replicas replay.

Vectors are float32 little-endian bytes here; callers convert with numpy.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import Any, Literal, cast

from sqlalchemy import ColumnElement, and_, delete, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from lookalike.services.catalog.models import Embedding, Image, IndexChange, Region, Space
from lookalike.services.catalog.schemas import Change
from lookalike.services.catalog.spaces import lock_spaces
from lookalike.services.errors import ImageNotFound, SpaceNotFound, VectorSizeMismatch

logger = logging.getLogger(__name__)

WHOLE_IMAGE = Embedding.region_id.is_(None)


def add_embeddings(
    *, session: Session, space_id: int, image_ids: Sequence[int], vectors: Sequence[bytes]
) -> int:
    """Upsert whole-image vectors, log one add per image, mark the images embedded.

    Images deleted meanwhile are skipped; returns how many vectors were written. Locks the
    image rows, then the space (the order `mark_image_deleted` uses), so that concurrent
    writers cannot interleave sequence numbers or resurrect a deleted image.
    """
    if len(image_ids) != len(vectors):
        raise ValueError(f"{len(image_ids)} image ids but {len(vectors)} vectors")
    if len(set(image_ids)) != len(image_ids):
        raise ValueError("duplicate image ids in one batch; give each image one vector")
    live = _lock_live_images(session, image_ids)
    dim = _lock_space_dim(session, space_id)
    pairs = [(i, bytes(v)) for i, v in zip(image_ids, vectors, strict=True) if i in live]
    _check_sizes(pairs, dim)
    if not pairs:
        return 0
    changes = [{"space_id": space_id, "image_id": i, "op": "add"} for i, _ in pairs]
    returning = insert(IndexChange).returning(IndexChange.id, sort_by_parameter_order=True)
    seqs = session.scalars(returning, changes).all()
    rows = [
        {"space_id": space_id, "image_id": i, "vector": v, "seq": seq}
        for (i, v), seq in zip(pairs, seqs, strict=True)
    ]
    session.execute(_upsert_whole_image(session), rows)
    embedded = update(Image).where(Image.id.in_(sorted(live))).values(status="embedded", error=None)
    session.execute(embedded.execution_options(synchronize_session="fetch"))
    session.flush()
    return len(pairs)


def changes_since(
    *, session: Session, space_id: int, watermark: int, limit: int = 10000
) -> list[Change]:
    """The space's changes with seq > `watermark`, in seq order, adds carrying their vector
    (a region space's entries name their region: its vector is the region's)."""
    current = and_(
        IndexChange.op == "add",
        Embedding.space_id == IndexChange.space_id,
        Embedding.image_id == IndexChange.image_id,
        or_(and_(IndexChange.region_id.is_(None), WHOLE_IMAGE),
            Embedding.region_id == IndexChange.region_id),
    )
    query = (
        select(IndexChange.id, IndexChange.image_id, IndexChange.op, Embedding.vector,
               IndexChange.region_id)
        .outerjoin(Embedding, current)
        .where(IndexChange.space_id == space_id, IndexChange.id > watermark)
        .order_by(IndexChange.id)
        .limit(limit)
    )
    return [
        Change(seq=seq, image_id=image_id, op=cast(Literal["add", "remove"], op), vector=vector,
               region_id=region_id)
        for seq, image_id, op, vector, region_id in session.execute(query)
    ]


def latest_seq(*, session: Session, space_id: int) -> int:
    """The space's newest sequence number: the watermark of an up-to-date replica (0 if none)."""
    query = select(func.max(IndexChange.id)).where(IndexChange.space_id == space_id)
    return session.scalar(query) or 0


def iter_vectors(
    *, session: Session, space_id: int, batch: int = 10000
) -> Iterator[tuple[list[int], list[bytes], int]]:
    """Every whole-image vector of a space (of a region space: every region vector, keyed by
    region id) in id batches, to rebuild an index.

    The third item is the watermark the batches are consistent with (the same in each
    batch): vectors written after it are left out, so replaying `changes_since(watermark)`
    on the rebuilt index brings it up to date even while writers keep adding.
    """
    regions = is_region_space(session=session, space_id=space_id)
    watermark = latest_seq(session=session, space_id=space_id)
    key = Embedding.region_id if regions else Embedding.image_id
    kind = Embedding.region_id.is_not(None) if regions else WHOLE_IMAGE
    after = 0
    while True:
        query = (
            select(key, Embedding.vector)
            .where(Embedding.space_id == space_id, kind, Embedding.seq <= watermark)
            .where(key > after)
            .order_by(key)
            .limit(batch)
        )
        rows = session.execute(query).all()
        if not rows:
            return
        keys = [int(cast(int, r[0])) for r in rows]  # never NULL: `kind` keeps rows with one
        after = keys[-1]
        yield keys, [r[1] for r in rows], watermark


def is_region_space(*, session: Session, space_id: int) -> bool:
    """Whether the space's vectors are regions' (`SpaceOptions.regions_of`), keyed by region."""
    space = session.get(Space, space_id)
    return space is not None and space.options.regions_of is not None


def region_images(*, session: Session, region_ids: Sequence[int]) -> dict[int, int]:
    """The image id of each of these regions that still exists."""
    if not region_ids:
        return {}
    query = select(Region.id, Region.image_id).where(Region.id.in_(list(region_ids)))
    return {int(r): int(i) for r, i in session.execute(query)}


def get_vector(*, session: Session, space_id: int, image_id: int) -> bytes | None:
    """The whole-image vector of an image in a space, or None."""
    query = select(Embedding.vector).where(
        Embedding.space_id == space_id, Embedding.image_id == image_id, WHOLE_IMAGE
    )
    return session.scalar(query)


def embedded_image_ids(*, session: Session, space_id: int) -> set[int]:
    """Ids of the images that have a whole-image vector in the space."""
    query = select(Embedding.image_id).where(Embedding.space_id == space_id, WHOLE_IMAGE)
    return set(session.scalars(query))


def embedded_among(*, session: Session, space_id: int, image_ids: Sequence[int]) -> set[int]:
    """Those of `image_ids` that have a whole-image vector in the space (one batch's check)."""
    if not image_ids:
        return set()
    query = select(Embedding.image_id).where(
        Embedding.space_id == space_id, WHOLE_IMAGE, Embedding.image_id.in_(list(image_ids))
    )
    return set(session.scalars(query))


def _lacking(space_id: int) -> ColumnElement[bool]:
    """Images embedded in the catalog that have no whole-image vector in the space."""
    held = select(Embedding.id).where(Embedding.space_id == space_id, WHOLE_IMAGE,
                                      Embedding.image_id == Image.id)
    return and_(Image.status == "embedded", ~held.exists())


def missing_image_ids(*, session: Session, space_id: int, after: int = 0,
                      limit: int = 1000) -> list[int]:
    """Up to `limit` ids above `after`, in order, of embedded images the space lacks."""
    query = (select(Image.id).where(_lacking(space_id), Image.id > after)
             .order_by(Image.id).limit(limit))
    return list(session.scalars(query))


def count_missing(*, session: Session, space_id: int) -> int:
    """How many embedded catalog images the space lacks: how far it lags the catalog (of a
    region space: how many regions of live images it lacks)."""
    if is_region_space(session=session, space_id=space_id):
        return count_regions_lacking(session=session, space_id=space_id)
    return session.scalar(select(func.count()).select_from(Image).where(_lacking(space_id))) or 0


def _lock_live_images(session: Session, image_ids: Sequence[int]) -> set[int]:
    """Lock the images in id order; the ids not deleted. Unknown ids raise ImageNotFound."""
    query = (
        select(Image.id, Image.status)
        .where(Image.id.in_(image_ids))
        .order_by(Image.id)
        .with_for_update(key_share=True)
    )
    status: dict[int, str] = {row.id: row.status for row in session.execute(query)}
    missing = sorted(set(image_ids) - status.keys())
    if missing:
        raise ImageNotFound(f"no images with ids {missing[:10]} (of {len(missing)} missing)")
    deleted = sorted(i for i, s in status.items() if s == "deleted")
    if deleted:
        logger.info("skipping %d deleted images, e.g. %s", len(deleted), deleted[:5])
    return {i for i, s in status.items() if s != "deleted"}


def _lock_space_dim(session: Session, space_id: int) -> int:
    """Lock the space for appending to its change log; its dimension."""
    if not lock_spaces(session=session, space_ids=[space_id]):
        raise SpaceNotFound(f"no space with id {space_id}")
    return session.scalars(select(Space.dim).where(Space.id == space_id)).one()


def _check_sizes(pairs: list[tuple[int, bytes]], dim: int) -> None:
    """Every vector must be `dim` float32 values."""
    for image_id, vector in pairs:
        if len(vector) != dim * 4:
            raise VectorSizeMismatch(
                f"vector of image {image_id} has {len(vector)} bytes; the space has dim {dim}, "
                f"so {dim * 4} bytes of float32 are needed"
            )


def _upsert_whole_image(session: Session) -> Any:
    """INSERT ... ON CONFLICT (space_id, image_id) WHERE region_id IS NULL DO UPDATE, run with
    a list of rows (executemany: compiled once, sent in multi-row batches by SQLAlchemy)."""
    dialect = session.get_bind().dialect.name
    dialect_insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = dialect_insert(Embedding)
    return statement.on_conflict_do_update(
        index_elements=[Embedding.space_id, Embedding.image_id],
        index_where=WHOLE_IMAGE,
        set_={"vector": statement.excluded.vector, "seq": statement.excluded.seq},
    )


def vectors_of(*, session: Session, space_id: int, image_ids: Sequence[int],
               chunk: int = 5000) -> dict[int, bytes]:
    """The whole-image vectors of these images in a space, keyed by image id (absent ones
    are left out)."""
    found: dict[int, bytes] = {}
    ids = list(image_ids)
    for start in range(0, len(ids), chunk):
        query = select(Embedding.image_id, Embedding.vector).where(
            Embedding.space_id == space_id, WHOLE_IMAGE,
            Embedding.image_id.in_(ids[start:start + chunk]))
        found.update({row[0]: row[1] for row in session.execute(query)})
    return found


def add_region_embeddings(*, session: Session, space_id: int, region_ids: Sequence[int],
                          vectors: Sequence[bytes]) -> int:
    """Write region vectors into a region space (replacing a region's earlier one) and log an
    add naming each region. Regions gone meanwhile (replaced by a rerun of their detector, or
    deleted with their image) are skipped; returns how many were written. Locks the regions'
    images, then the space, as `add_embeddings` does."""
    if len(region_ids) != len(vectors):
        raise ValueError(f"{len(region_ids)} region ids but {len(vectors)} vectors")
    owners = {int(r): int(i) for r, i in session.execute(
        select(Region.id, Region.image_id).where(Region.id.in_(list(region_ids))))}
    live = _lock_live_images(session, sorted(set(owners.values()))) if owners else set()
    dim = _lock_space_dim(session, space_id)
    pairs = [(r, bytes(v)) for r, v in zip(region_ids, vectors, strict=True)
             if owners.get(r) in live]
    _check_sizes(pairs, dim)
    if not pairs:
        return 0
    keys = [r for r, _ in pairs]
    session.execute(delete(Embedding).where(Embedding.space_id == space_id,
                                            Embedding.region_id.in_(keys)))
    changes = [{"space_id": space_id, "image_id": owners[r], "region_id": r, "op": "add"}
               for r in keys]
    returning = insert(IndexChange).returning(IndexChange.id, sort_by_parameter_order=True)
    seqs = session.scalars(returning, changes).all()
    session.execute(insert(Embedding), [
        {"space_id": space_id, "image_id": owners[r], "region_id": r, "vector": v, "seq": seq}
        for (r, v), seq in zip(pairs, seqs, strict=True)])
    session.flush()
    return len(pairs)


def remove_region_embeddings(*, session: Session, region_ids: Sequence[int]) -> int:
    """Drop the vectors of regions about to go (a detector's rerun replaces them) and log a
    remove naming each, in every region space that held one; how many went."""
    if not region_ids:
        return 0
    held = session.execute(select(Embedding.space_id, Embedding.image_id, Embedding.region_id)
                           .where(Embedding.region_id.in_(list(region_ids)))).all()
    if not held:
        return 0
    lock_spaces(session=session, space_ids=sorted({row[0] for row in held}))
    session.execute(delete(Embedding).where(Embedding.region_id.in_(list(region_ids))))
    session.add_all(IndexChange(space_id=s, image_id=i, region_id=r, op="remove")
                    for s, i, r in held)
    session.flush()
    return len(held)


def regions_lacking(*, session: Session, space_id: int, image_ids: Sequence[int] | None = None,
                    after: int = 0, limit: int = 1000) -> list[tuple[int, int]]:
    """(region id, image id) of regions of live images that have no vector in the region
    space (of `image_ids` only, when given), region ids above `after`, in order."""
    held = select(Embedding.id).where(Embedding.space_id == space_id,
                                      Embedding.region_id == Region.id)
    query = (select(Region.id, Region.image_id).join(Image, Image.id == Region.image_id)
             .where(Image.status == "embedded", ~held.exists(), Region.id > after))
    if image_ids is not None:
        query = query.where(Region.image_id.in_(list(image_ids)))
    return [(r, i) for r, i in session.execute(query.order_by(Region.id).limit(limit))]


def count_regions_lacking(*, session: Session, space_id: int) -> int:
    """How many regions of live images the region space lacks: how far it lags."""
    held = select(Embedding.id).where(Embedding.space_id == space_id,
                                      Embedding.region_id == Region.id)
    query = (select(func.count()).select_from(Region).join(Image, Image.id == Region.image_id)
             .where(Image.status == "embedded", ~held.exists()))
    return session.scalar(query) or 0
