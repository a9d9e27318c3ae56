"""Embeddings and the change log: sequence numbers, replays, deletion, rebuilds, cascades."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from lookalike.services.catalog.embeddings import (
    add_embeddings,
    changes_since,
    embedded_image_ids,
    get_vector,
    iter_vectors,
    latest_seq,
)
from lookalike.services.catalog.images import count_images, get_image, mark_image_deleted
from lookalike.services.catalog.models import (
    Embedding,
    Image,
    IndexChange,
    IndexSnapshot,
    Region,
    Space,
)
from lookalike.services.catalog.snapshots import latest_snapshot, record_snapshot
from lookalike.services.catalog.spaces import vector_count
from lookalike.services.errors import ImageNotFound, VectorSizeMismatch
from tests.services.catalog.builders import DIM, add_images, space, vectors


def _count(session: Session, model: type) -> int:
    return session.scalar(select(func.count()).select_from(model)) or 0


def test_add_embeddings_logs_adds_and_marks_images_embedded(session: Session) -> None:
    gap = space(session)
    images = add_images(session, 3)
    ids = [i.id for i in images]
    vecs = vectors(3)
    assert add_embeddings(session=session, space_id=gap.id, image_ids=ids, vectors=vecs) == 3
    session.commit()
    changes = changes_since(session=session, space_id=gap.id, watermark=0)
    assert [(c.image_id, c.op, c.vector) for c in changes] == list(
        zip(ids, ["add"] * 3, vecs, strict=True)
    )
    assert [c.seq for c in changes] == sorted(c.seq for c in changes)
    assert latest_seq(session=session, space_id=gap.id) == changes[-1].seq
    assert count_images(session=session, status="embedded") == 3
    assert vector_count(session=session, space_id=gap.id) == 3
    restored = np.frombuffer(get_vector(session=session, space_id=gap.id, image_id=ids[1]), "<f4")
    assert restored.shape == (DIM,)
    assert np.isclose(np.linalg.norm(restored), 1.0)


def test_re_embedding_replaces_the_vector_with_a_newer_seq(session: Session) -> None:
    gap = space(session)
    (image,) = add_images(session, 1)
    old, new = vectors(2)
    add_embeddings(session=session, space_id=gap.id, image_ids=[image.id], vectors=[old])
    session.commit()
    watermark = latest_seq(session=session, space_id=gap.id)
    add_embeddings(session=session, space_id=gap.id, image_ids=[image.id], vectors=[new])
    session.commit()
    assert get_vector(session=session, space_id=gap.id, image_id=image.id) == new
    assert vector_count(session=session, space_id=gap.id) == 1
    later = changes_since(session=session, space_id=gap.id, watermark=watermark)
    assert [(c.op, c.vector) for c in later] == [("add", new)]
    seq = session.scalar(select(Embedding.seq).where(Embedding.image_id == image.id))
    assert seq == later[0].seq > watermark


def test_mark_deleted_removes_embeddings_and_logs_one_remove_per_space(session: Session) -> None:
    gap, gem, empty = space(session, "gap"), space(session, "gem"), space(session, "empty")
    keep, gone = add_images(session, 2)
    both = [keep.id, gone.id]
    add_embeddings(session=session, space_id=gap.id, image_ids=both, vectors=vectors(2))
    add_embeddings(session=session, space_id=gem.id, image_ids=[gone.id], vectors=vectors(1))
    session.commit()
    marks = {s.id: latest_seq(session=session, space_id=s.id) for s in (gap, gem, empty)}
    assert mark_image_deleted(session=session, image_id=gone.id)
    session.commit()
    assert not mark_image_deleted(session=session, image_id=gone.id)
    assert not mark_image_deleted(session=session, image_id=10**9)
    for s in (gap, gem):
        removes = changes_since(session=session, space_id=s.id, watermark=marks[s.id])
        assert [(c.image_id, c.op, c.vector) for c in removes] == [(gone.id, "remove", None)]
    assert changes_since(session=session, space_id=empty.id, watermark=0) == []
    assert embedded_image_ids(session=session, space_id=gap.id) == {keep.id}
    assert embedded_image_ids(session=session, space_id=gem.id) == set()
    assert get_image(session=session, image_id=gone.id).status == "deleted"


def test_changes_since_replays_the_log_in_order(session: Session) -> None:
    gap = space(session)
    a, b, c = add_images(session, 3)
    va, vb, vc = vectors(3)
    add_embeddings(session=session, space_id=gap.id, image_ids=[a.id, b.id], vectors=[va, vb])
    mark_image_deleted(session=session, image_id=a.id)
    add_embeddings(session=session, space_id=gap.id, image_ids=[c.id], vectors=[vc])
    session.commit()
    log = changes_since(session=session, space_id=gap.id, watermark=0)
    assert [(ch.image_id, ch.op, ch.vector) for ch in log] == [
        (a.id, "add", None),  # its embedding was removed since
        (b.id, "add", vb),
        (a.id, "remove", None),
        (c.id, "add", vc),
    ]
    replica = _replay(log)
    assert replica == {b.id: vb, c.id: vc}
    tail = changes_since(session=session, space_id=gap.id, watermark=log[1].seq, limit=1)
    assert [(ch.image_id, ch.op) for ch in tail] == [(a.id, "remove")]


def test_deleted_images_are_not_embedded_again(session: Session) -> None:
    gap = space(session)
    live, deleted = add_images(session, 2)
    mark_image_deleted(session=session, image_id=deleted.id)
    written = add_embeddings(
        session=session, space_id=gap.id, image_ids=[live.id, deleted.id], vectors=vectors(2)
    )
    session.commit()
    assert written == 1
    assert embedded_image_ids(session=session, space_id=gap.id) == {live.id}
    assert get_image(session=session, image_id=deleted.id).status == "deleted"


def test_bad_batches_are_rejected(session: Session) -> None:
    gap = space(session)
    (image,) = add_images(session, 1)
    with pytest.raises(VectorSizeMismatch, match=f"16 bytes; the space has dim {DIM}"):
        add_embeddings(session=session, space_id=gap.id, image_ids=[image.id], vectors=[b"0" * 16])
    with pytest.raises(ImageNotFound, match="999999"):
        add_embeddings(session=session, space_id=gap.id, image_ids=[999999], vectors=vectors(1))
    with pytest.raises(ValueError, match="duplicate image ids"):
        add_embeddings(
            session=session, space_id=gap.id, image_ids=[image.id] * 2, vectors=vectors(2)
        )


def test_iter_vectors_rebuilds_the_space_in_batches(session: Session) -> None:
    gap = space(session)
    images = add_images(session, 7)
    ids = [i.id for i in images]
    vecs = vectors(7)
    add_embeddings(session=session, space_id=gap.id, image_ids=ids, vectors=vecs)
    mark_image_deleted(session=session, image_id=ids[3])
    session.commit()
    batches = list(iter_vectors(session=session, space_id=gap.id, batch=3))
    assert [len(batch_ids) for batch_ids, _, _ in batches] == [3, 3]
    rebuilt = {}
    for batch_ids, batch_vecs, _ in batches:
        rebuilt.update(zip(batch_ids, batch_vecs, strict=True))
    assert rebuilt == {i: v for i, v in zip(ids, vecs, strict=True) if i != ids[3]}
    assert {w for _, _, w in batches} == {latest_seq(session=session, space_id=gap.id)}


def test_snapshots_record_the_watermark(session: Session) -> None:
    gap = space(session)
    assert latest_snapshot(session=session, space_id=gap.id) is None
    for watermark in (3, 9):
        record_snapshot(
            session=session,
            space_id=gap.id,
            path=f"indexes/gap-{watermark}.faiss",
            factory="Flat",
            vector_count=watermark,
            watermark=watermark,
            sha256="ab" * 32,
        )
    session.commit()
    assert latest_snapshot(session=session, space_id=gap.id).watermark == 9


def test_deleting_a_space_or_an_image_cascades(session: Session) -> None:
    gap, gem = space(session, "gap"), space(session, "gem")
    first, second = add_images(session, 2)
    both = [first.id, second.id]
    for s in (gap, gem):
        add_embeddings(session=session, space_id=s.id, image_ids=both, vectors=vectors(2))
    session.add(Region(image_id=first.id, x0=0, y0=0, x1=10, y1=10, detector="user"))
    record_snapshot(
        session=session,
        space_id=gap.id,
        path="g",
        factory="Flat",
        vector_count=2,
        watermark=2,
        sha256="0" * 64,
    )
    session.commit()
    session.execute(delete(Space).where(Space.id == gap.id))
    session.commit()
    assert _count(session, IndexSnapshot) == 0
    assert session.scalar(select(func.count()).where(IndexChange.space_id == gap.id)) == 0
    assert embedded_image_ids(session=session, space_id=gem.id) == set(both)
    session.execute(delete(Image).where(Image.id == first.id))
    session.commit()
    assert _count(session, Region) == 0
    assert embedded_image_ids(session=session, space_id=gem.id) == {second.id}
    assert _count(session, Embedding) == 1


def _replay(log: list) -> dict[int, bytes]:
    """What an index replica holds after applying the log: adds upsert, removes drop."""
    replica: dict[int, bytes] = {}
    for change in log:
        if change.op == "remove":
            replica.pop(change.image_id, None)
        elif change.vector is not None:
            replica[change.image_id] = change.vector
    return replica
