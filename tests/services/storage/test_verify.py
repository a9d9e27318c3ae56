"""The storage check on SQLite and PostgreSQL: orphan files found and removed, an image whose
original is gone marked failed with the reason, a space's missing file reported, no row
deleted."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from lookalike.services.catalog import images as image_queries
from lookalike.services.catalog import spaces as space_queries
from lookalike.services.catalog.schemas import SpaceCreate
from lookalike.services.ingest.images import delete_image
from lookalike.services.ingest.pipeline import ingest_bytes
from lookalike.services.runtime import Runtime
from lookalike.services.setup import init_catalog, open_runtime
from lookalike.services.storage.verify import verify_storage
from tests import imagefactory
from tests.services.conftest import make_settings

pytestmark = pytest.mark.slow


@pytest.fixture()
def runtime(tmp_path: Path, database_url: str) -> Iterator[Runtime]:
    settings = make_settings(tmp_path / "home", database_url)
    init_catalog(settings)
    with open_runtime(settings) as opened:
        yield opened


def add_space_without_its_whitening(runtime: Runtime) -> Path:
    """A space whose whitening file was never there; the path it names."""
    with runtime.session() as session:
        default = space_queries.get_default_space(session=session)
        assert default is not None
        options = default.options.model_copy(update={"whitening_sha256": "7" * 64})
        space_queries.create_space(session=session, data=SpaceCreate(
            name="ghost", backbone=default.backbone, weights_sha256=default.weights_sha256,
            layer=default.layer, pooling=default.pooling, whitening="pca8", dim=8,
            options=options))
        session.commit()
    return runtime.settings.layout.whitening / f"{'7' * 64}.npz"


def test_verify_finds_what_is_wrong_and_fix_settles_what_it_can(runtime: Runtime) -> None:
    kept = ingest_bytes(runtime, imagefactory.jpeg_bytes("astronaut", (96, 64)),
                        source="upload:a.jpg").image
    gone = ingest_bytes(runtime, imagefactory.png_bytes("chelsea", (96, 64)),
                        source="upload:b.png").image
    assert verify_storage(runtime).findings == []
    kept_path, gone_path = (runtime.settings.layout.resolve(image.stored_path or "")
                            for image in (kept, gone))
    delete_image(runtime, gone.id)
    gone_path.parent.mkdir(parents=True, exist_ok=True)
    gone_path.write_bytes(b"left by a crash")  # named by a deleted row only: an orphan
    kept_path.unlink()
    whitening = add_space_without_its_whitening(runtime)

    found = verify_storage(runtime)
    assert sorted(map(str, found.findings)) == sorted([
        f"orphan {gone_path}", f"missing {kept_path} (image {kept.id})",
        f"missing {whitening} (space 'ghost' whitening file)"])
    assert gone_path.exists() and found.removed == found.marked_failed == []

    fixed = verify_storage(runtime, fix=True)
    assert (fixed.removed, fixed.marked_failed) == ([gone_path], [kept.id])
    assert [str(f) for f in fixed.remaining] == [
        f"missing {whitening} (space 'ghost' whitening file)"]
    assert not gone_path.exists()
    with runtime.session() as session:
        rows = {row.id: row for row in image_queries.list_images(session=session)}
    assert {i: r.status for i, r in rows.items()} == {kept.id: "failed", gone.id: "deleted"}
    assert "missing" in (rows[kept.id].error or "")
    assert [str(f) for f in verify_storage(runtime).findings] == [
        f"missing {whitening} (space 'ghost' whitening file)"]
