"""Image rows: idempotent by sha256 (also under concurrent writers), filters, statuses."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from lookalike.services.catalog.images import (
    add_image,
    count_images,
    get_image,
    get_image_by_sha,
    images_by_ids,
    list_images,
    pending_images,
    set_image_status,
)
from lookalike.services.catalog.models import Image
from lookalike.services.catalog.session import make_engine, make_session_factory
from lookalike.services.errors import ImageNotFound, InvalidStatus
from tests.services.catalog.builders import add_images, image_data


def test_add_image_is_idempotent_by_sha(session: Session) -> None:
    first, created = add_image(session=session, data=image_data("cat", label="cat"))
    session.commit()
    again, created_again = add_image(session=session, data=image_data("cat", label="dog"))
    session.commit()
    assert (created, created_again) == (True, False)
    assert again.id == first.id
    assert again.label == "cat"
    assert count_images(session=session) == 1


def test_duplicate_insert_keeps_the_rest_of_the_transaction(session: Session) -> None:
    add_image(session=session, data=image_data("a"))
    session.commit()
    kept, _ = add_image(session=session, data=image_data("b"))
    _, created = add_image(session=session, data=image_data("a"))
    session.commit()
    assert not created
    assert get_image(session=session, image_id=kept.id) is not None
    assert count_images(session=session) == 2


def test_concurrent_add_of_one_sha_makes_one_row(migrated_url: str) -> None:
    engines = [make_engine(migrated_url), make_engine(migrated_url)]
    first_inserted = threading.Event()

    def first() -> tuple[int, bool]:
        with make_session_factory(engines[0])() as db:
            image, created = add_image(session=db, data=image_data("race"))
            first_inserted.set()
            time.sleep(0.3)  # hold the uncommitted row while the second writer inserts
            db.commit()
            return image.id, created

    def second() -> tuple[int, bool]:
        assert first_inserted.wait(10)
        with make_session_factory(engines[1])() as db:
            image, created = add_image(session=db, data=image_data("race"))
            db.commit()
            return image.id, created

    with ThreadPoolExecutor(max_workers=2) as pool:
        first_result, second_result = pool.submit(first), pool.submit(second)
        first_id, first_created = first_result.result(timeout=30)
        assert second_result.result(timeout=30) == (first_id, False)
    assert first_created
    with make_session_factory(engines[0])() as db:
        assert count_images(session=db) == 1
    for engine in engines:
        engine.dispose()


def test_lookups_and_filters(session: Session) -> None:
    cats = [add_image(session=session, data=image_data(f"c{i}", label="cat"))[0] for i in range(3)]
    dog, _ = add_image(session=session, data=image_data("d", label="dog", collection="pets"))
    session.commit()
    assert get_image_by_sha(session=session, sha256=dog.sha256) == dog
    assert get_image_by_sha(session=session, sha256="0" * 64) is None
    assert set(images_by_ids(session=session, ids=[cats[0].id, dog.id, 10**9])) == {
        cats[0].id,
        dog.id,
    }
    assert list_images(session=session, label="cat") == cats
    assert list_images(session=session, label="cat", offset=1, limit=1) == [cats[1]]
    assert list_images(session=session, collection="pets") == [dog]
    assert count_images(session=session, status="pending") == 4


def test_status_changes(session: Session) -> None:
    images = add_images(session, 3)
    set_image_status(session=session, image_id=images[1].id, status="failed", error="truncated")
    session.commit()
    assert pending_images(session=session, limit=10) == [images[0], images[2]]
    assert pending_images(session=session, limit=1) == [images[0]]
    failed = list_images(session=session, status="failed")
    assert [(i.id, i.error) for i in failed] == [(images[1].id, "truncated")]
    assert failed[0].updated_at.tzinfo is not None


def test_bad_status_is_rejected_by_name(session: Session) -> None:
    (image,) = add_images(session, 1)
    with pytest.raises(InvalidStatus, match="'done'; allowed: pending, embedded"):
        set_image_status(session=session, image_id=image.id, status="done")
    with pytest.raises(InvalidStatus, match="mark_image_deleted"):
        set_image_status(session=session, image_id=image.id, status="deleted")
    with pytest.raises(ImageNotFound, match="12345"):
        set_image_status(session=session, image_id=12345, status="failed")


def test_database_check_rejects_unknown_status(session: Session) -> None:
    add_images(session, 1)
    session.commit()
    with pytest.raises(IntegrityError, match="ck_image_status|CHECK"):
        session.execute(update(Image).values(status="archived"))
    session.rollback()
    assert count_images(session=session, status="pending") == 1
