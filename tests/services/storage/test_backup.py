"""`lookalike backup` while an ingest runs, and `lookalike restore` into a new home: every
image committed before the backup began comes back whole and indexed; a damaged backup or a
non-empty home is refused before anything is written."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import make_url

from lookalike.services.catalog import images as image_queries
from lookalike.services.catalog import spaces as space_queries
from lookalike.services.catalog.documents import SpaceOptions
from lookalike.services.catalog.schemas import SpaceCreate
from lookalike.services.errors import BackupError
from lookalike.services.index.snapshots import snapshot_all
from lookalike.services.index.verify import verify_all
from lookalike.services.ingest import pipeline
from lookalike.services.runtime import Runtime
from lookalike.services.setup import init_catalog, open_runtime
from lookalike.services.storage.archive import MANIFEST
from lookalike.services.storage.backup import backup_home
from lookalike.services.storage.restore import restore_home
from lookalike.services.storage.verify import verify_storage
from tests import imagefactory
from tests.services.conftest import ingest_into, make_settings

WHITENING = b"a whitening file"


def embedded(runtime: Runtime) -> dict[int, str]:
    """id -> sha256 of every embedded image."""
    with runtime.read_session() as session:
        rows = image_queries.list_images(session=session, status="embedded", offset=0,
                                         limit=1000)
    return {row.id: row.sha256 for row in rows}


def slow_commits(monkeypatch: pytest.MonkeyPatch, started: threading.Event) -> None:
    """Each batch of an ingest commits a little later, so that a backup overlaps it."""
    commit = pipeline._commit_batch

    def later(*args: object) -> int:
        started.set()
        time.sleep(0.15)
        return commit(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(pipeline, "_commit_batch", later)


@pytest.mark.slow
def test_a_backup_during_an_ingest_restores_every_image_committed_before_it(
        tmp_path: Path, photo_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = tmp_path / "first"
    first.mkdir()
    (first / "a.png").write_bytes(imagefactory.png_bytes("chelsea", (64, 64)))
    (first / "b.jpg").write_bytes(imagefactory.jpeg_bytes("coffee", (64, 64)))
    settings = make_settings(tmp_path / "home", batch_size=2)
    init_catalog(settings)
    with open_runtime(settings) as runtime:
        ingest_into(runtime, first)
        snapshot_all(runtime)
        started = threading.Event()
        slow_commits(monkeypatch, started)
        ingest = threading.Thread(target=ingest_into, args=(runtime, photo_dir))
        ingest.start()
        assert started.wait(60)
        deadline = time.monotonic() + 60
        while len(before := embedded(runtime)) <= 2:  # until a batch of this ingest is in
            assert time.monotonic() < deadline, "the ingest committed no batch"
            time.sleep(0.02)
        assert ingest.is_alive(), "the ingest ended before the backup began"
        report = backup_home(settings, tmp_path / "backup")
        ingest.join()
        assert len(embedded(runtime)) > len(before)
    assert report.left_out == [] and report.catalog == "sqlite"
    assert report.snapshots == 1 and report.originals >= len(before)

    restored = make_settings(tmp_path / "restored")
    restore_home(restored, tmp_path / "backup")
    with open_runtime(restored) as runtime:
        assert embedded(runtime).items() >= before.items()
        assert all(report.ok for report in verify_all(runtime))
        assert verify_storage(runtime).findings == []


def home_with_a_space_file(settings_home: Path, database_url: str | None) -> Path:
    """A catalog (no model) with one space naming a whitening file under the home."""
    settings = make_settings(settings_home, database_url)
    init_catalog(settings)
    sha = hashlib.sha256(WHITENING).hexdigest()
    path = settings.layout.whitening / f"{sha}.npz"
    path.parent.mkdir(parents=True)
    path.write_bytes(WHITENING)
    with open_runtime(settings) as runtime, runtime.session() as session:
        space_queries.create_space(session=session, data=SpaceCreate(
            name="white", backbone="synthetic", layer="none", pooling="gap", whitening="pca4",
            dim=4, options=SpaceOptions(whitening_sha256=sha)))
        session.commit()
    return path


def test_restore_checks_the_backup_and_the_target_before_writing(
        tmp_path: Path, database_url: str) -> None:
    server = make_url(database_url).get_backend_name() == "postgresql"
    whitening = home_with_a_space_file(tmp_path / "home", database_url if server else None)
    backup = tmp_path / "backup"
    report = backup_home(make_settings(tmp_path / "home", database_url if server else None),
                         backup)
    assert report.catalog == ("postgresql" if server else "sqlite")
    files = json.loads((backup / MANIFEST).read_text())["files"]
    assert ("catalog.db" in files) is not server
    name = whitening.relative_to(tmp_path / "home").as_posix()
    assert files[name] == hashlib.sha256(WHITENING).hexdigest()

    target = make_settings(tmp_path / "new", database_url if server else None)
    full = make_settings(tmp_path / "full", database_url if server else None)
    full.home.mkdir()
    (full.home / "something").write_text("here")
    with pytest.raises(BackupError, match="not empty"):
        restore_home(full, backup)
    (backup / name).write_bytes(b"changed")
    with pytest.raises(BackupError, match=f"{name} is damaged"):
        restore_home(target, backup)
    (backup / name).unlink()
    with pytest.raises(BackupError, match=f"{name} is missing"):
        restore_home(target, backup)
    assert not target.home.exists(), "a refused restore wrote something"
    (backup / name).write_bytes(WHITENING)
    restore_home(target, backup)
    assert (target.home / name).read_bytes() == WHITENING
    assert (target.home / "catalog.db").exists() is not server
    with pytest.raises(BackupError, match="not an empty folder"):
        backup_home(target, backup)


def test_trained_detectors_travel_with_a_backup(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "home")
    init_catalog(settings)
    settings.layout.detectors.mkdir(parents=True)
    (settings.layout.detectors / "scenes.pt").write_bytes(b"a detector's tensors")
    report = backup_home(settings, tmp_path / "backup")
    assert report.left_out == []
    restored = make_settings(tmp_path / "restored")
    restore_home(restored, tmp_path / "backup")
    assert (restored.layout.detectors / "scenes.pt").read_bytes() == b"a detector's tensors"
