"""Stored originals and thumbnails live as long as an image row names them: a delete racing a
re-upload of the same bytes, in either order, never leaves an embedded image without its
file, and a file that no longer holds its bytes is written again when they come back."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from lookalike.services.catalog import images as image_queries
from lookalike.services.catalog.models import Image
from lookalike.services.ingest import pipeline
from lookalike.services.ingest.images import delete_image, thumbnail_file
from lookalike.services.ingest.pipeline import ingest_bytes, ingest_items
from lookalike.services.ingest.sources import IngestItem
from lookalike.services.runtime import Runtime
from lookalike.services.setup import init_catalog, open_runtime
from tests import imagefactory
from tests.services.conftest import make_settings

pytestmark = pytest.mark.slow

PHOTO = imagefactory.jpeg_bytes("astronaut", (160, 120))
WAIT_S = 60


@pytest.fixture()
def runtime(tmp_path: Path, database_url: str) -> Iterator[Runtime]:
    settings = make_settings(tmp_path / "home", database_url)
    init_catalog(settings)
    with open_runtime(settings) as opened:
        yield opened


def upload(runtime: Runtime, name: str = "a.jpg") -> pipeline.UploadResult:
    return ingest_bytes(runtime, PHOTO, source=f"upload:{name}")


def row(runtime: Runtime, image_id: int) -> Image:
    with runtime.session() as session:
        image = image_queries.get_image(session=session, image_id=image_id)
    assert image is not None
    return image


def assert_embedded_with_its_file(runtime: Runtime, image_id: int) -> None:
    image = row(runtime, image_id)
    assert image.status == "embedded" and image.stored_path
    stored = runtime.settings.layout.resolve(image.stored_path)
    assert stored.is_file(), f"embedded image {image_id} lost its original {stored}"
    assert hashlib.sha256(stored.read_bytes()).hexdigest() == image.sha256


def test_a_re_upload_between_a_deletes_commit_and_its_file_removal_keeps_the_file(
        runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    image = upload(runtime).image
    refresh = runtime.loaded_replicas

    def upload_meanwhile() -> list:
        again = upload(runtime, "again.jpg")
        assert again.created and again.image.id == image.id  # the deleted row, taken over
        return refresh()

    monkeypatch.setattr(runtime, "loaded_replicas", upload_meanwhile)
    delete_image(runtime, image.id)
    assert_embedded_with_its_file(runtime, image.id)


def test_a_delete_between_a_re_uploads_file_check_and_its_commit_keeps_the_file(
        runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    image = upload(runtime).image
    prepared, go = threading.Event(), threading.Event()
    results: list[pipeline.UploadResult] = []
    real_prepare = pipeline.prepare_bytes

    def prepare_then_wait(*args, **kwargs):
        made = real_prepare(*args, **kwargs)  # the original is still there: kept
        prepared.set()
        assert go.wait(WAIT_S)
        return made

    monkeypatch.setattr(pipeline, "prepare_bytes", prepare_then_wait)
    uploader = threading.Thread(target=lambda: results.append(upload(runtime, "again.jpg")))
    refresh = runtime.loaded_replicas

    def start_upload() -> list:
        uploader.start()
        assert prepared.wait(WAIT_S)
        return refresh()

    monkeypatch.setattr(runtime, "loaded_replicas", start_upload)
    delete_image(runtime, image.id)  # removes the files while the upload waits to commit
    go.set()
    uploader.join(WAIT_S)
    assert [r.image.id for r in results] == [image.id]
    assert_embedded_with_its_file(runtime, image.id)


def test_an_original_that_no_longer_holds_its_bytes_is_rewritten_when_they_come_again(
        runtime: Runtime, tmp_path: Path) -> None:
    image = upload(runtime).image
    stored = runtime.settings.layout.resolve(image.stored_path or "")
    stored.write_bytes(bytes(len(PHOTO)))  # zero-filled, the right size
    assert not upload(runtime, "again.jpg").created
    assert stored.read_bytes() == PHOTO

    source = tmp_path / "same.jpg"
    source.write_bytes(PHOTO)
    stored.write_bytes(bytes(len(PHOTO)))
    assert ingest_items(runtime, [IngestItem(path=source)]).duplicates == 1
    assert stored.read_bytes() == PHOTO

    thumbnail = thumbnail_file(runtime, image.id)
    delete_image(runtime, image.id)
    stored.parent.mkdir(parents=True, exist_ok=True)
    thumbnail.parent.mkdir(parents=True, exist_ok=True)
    stored.write_bytes(bytes(len(PHOTO)))  # left behind, say by a crash, then damaged
    thumbnail.write_bytes(bytes(100))
    assert upload(runtime, "third.jpg").created
    assert_embedded_with_its_file(runtime, image.id)
    assert thumbnail_file(runtime, image.id).read_bytes()[:2] == b"\xff\xd8"  # a JPEG again


def test_a_delete_that_fails_after_its_commit_still_removes_the_files(
        runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    image = upload(runtime).image
    thumbnail = thumbnail_file(runtime, image.id)
    [replica] = runtime.loaded_replicas()

    def unreadable(_session: object) -> None:
        raise OSError("the index folder went away")

    monkeypatch.setattr(replica, "refresh", unreadable)
    with pytest.raises(OSError, match="went away"):
        delete_image(runtime, image.id)
    assert row(runtime, image.id).status == "deleted"
    assert not runtime.settings.layout.resolve(image.stored_path or "").exists()
    assert not thumbnail.exists()
