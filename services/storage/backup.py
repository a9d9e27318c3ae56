"""`lookalike backup`: a consistent copy of a home while the service runs.

The SQLite catalog is copied first, through SQLite's online backup API (one consistent
state, while writers go on). Every other file is then chosen by that copy: the original of
each pending or embedded image, the whitening, weight and head files of each space, and per
space the newest valid index snapshot whose watermark the copy has reached (a newer one
would hold vectors the copied catalog lacks), beside the one the copy records as newest.
Originals are content-addressed, so a row committed before the copy names a file already
whole on disk (ingest syncs files before it commits rows); each is hashed as it is copied.
Files written since (an ingest in flight) are left out. A PostgreSQL catalog is dumped with
pg_dump instead (README); then the files are chosen by the live catalog."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import make_url
from sqlalchemy.orm import Session

from lookalike.retrieval import atomic
from lookalike.retrieval.index.snapshot import SnapshotManifest, file_problem, list_snapshots
from lookalike.services.catalog import embeddings as embedding_queries
from lookalike.services.catalog import images as image_queries
from lookalike.services.catalog import snapshots as snapshot_queries
from lookalike.services.catalog import spaces as space_queries
from lookalike.services.catalog import textmodels
from lookalike.services.catalog import videos as video_queries
from lookalike.services.catalog.models import Space
from lookalike.services.catalog.session import make_engine, make_session_factory
from lookalike.services.config import Settings
from lookalike.services.errors import BackupError
from lookalike.services.index.replicas import space_directory
from lookalike.services.spaces.files import space_files
from lookalike.services.storage.archive import (
    CATALOG,
    BackupManifest,
    copy_hashed,
    write_manifest,
)
from lookalike.services.storage.files import file_sha256
from lookalike.services.storage.verify import CHECKED_STATUSES, PAGE
from lookalike.services.video.registry import REGISTRY, classifier_files

log = logging.getLogger(__name__)


@dataclass
class BackupReport:
    """What a backup holds, and each file it had to leave out, with the reason."""

    folder: Path
    catalog: str
    originals: int = 0
    space_files: int = 0
    snapshots: int = 0
    bytes: int = 0
    left_out: list[str] = field(default_factory=list)


def sqlite_path(settings: Settings) -> Path | None:
    """The SQLite catalog's file, or None when the catalog is a server (PostgreSQL)."""
    url = make_url(settings.catalog_url)
    return Path(str(url.database)) if url.get_backend_name() == "sqlite" else None


def backup_home(settings: Settings, folder: Path) -> BackupReport:
    """Copy the home's catalog (SQLite) and files into the new or empty `folder`, with a
    manifest of their sha256 sums written last."""
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise BackupError(f"{folder} is not an empty folder; back up into a new one")
    database = sqlite_path(settings)
    if database is not None and not database.is_file():
        raise BackupError(f"no catalog at {database}; is LOOKALIKE_HOME ({settings.home}) "
                          "the home to back up?")
    folder.mkdir(parents=True, exist_ok=True)
    manifest = BackupManifest(catalog="sqlite" if database else "postgresql")
    report = BackupReport(folder, manifest.catalog)
    if database is not None:
        _copy_sqlite(database, folder / CATALOG)
    with _catalog(folder / CATALOG if database else None, settings) as session:
        _copy_originals(session, settings, folder, manifest, report)
        _copy_videos(session, settings, folder, manifest, report)
        for space in space_queries.list_spaces(session=session):
            _copy_space_files(space, settings, folder, manifest, report)
            _copy_snapshots(session, space, settings, folder, manifest, report)
        _copy_text_models(session, settings, folder, manifest, report)
    _copy_video_classifiers(settings, folder, manifest, report)
    _copy_detectors(settings, folder, manifest, report)
    if database is not None:
        _single_file(folder / CATALOG)
        manifest.files[CATALOG] = str(file_sha256(folder / CATALOG))
    report.bytes = sum((folder / name).stat().st_size for name in manifest.files)
    atomic.sync_filesystem(folder)  # every copy on disk before the manifest vouches for it
    write_manifest(folder, manifest)
    log.info("backup %s: %d files, %d bytes", folder, len(manifest.files), report.bytes)
    return report


def _copy_sqlite(database: Path, target: Path) -> None:
    """One consistent copy of a live SQLite catalog: the online backup API reads a single
    state of the database while other processes keep writing."""
    source = sqlite3.connect(database, timeout=30)
    copy = sqlite3.connect(target)
    try:
        source.backup(copy)
    finally:
        copy.close()
        source.close()


def _single_file(database: Path) -> None:
    """Leave the copied catalog as one self-contained file (no write-ahead log beside it)."""
    connection = sqlite3.connect(database)
    try:
        connection.execute("PRAGMA journal_mode=DELETE")
    finally:
        connection.close()


@contextmanager
def _catalog(copy: Path | None, settings: Settings) -> Iterator[Session]:
    """A read-only session on the copied catalog, or on the live one when none was copied."""
    engine = make_engine(f"sqlite:///{copy}" if copy else settings.catalog_url)
    try:
        with make_session_factory(engine, read_only=True)() as session:
            yield session
    finally:
        engine.dispose()


def _add(source: Path, sha256: str, what: str, settings: Settings, folder: Path,
         manifest: BackupManifest, report: BackupReport) -> bool:
    """Copy one file of the home into the backup if its bytes hash to `sha256`; else say
    why it is left out. Whether it was copied."""
    name = settings.layout.stored(source)
    if Path(name).is_absolute():
        report.left_out.append(f"{what} {source}: outside the home; back it up yourself")
        return False
    target = folder / name
    digest = copy_hashed(source, target)
    if digest != sha256:
        target.unlink(missing_ok=True)
        state = "is missing" if digest is None else "does not hash to its recorded sha256"
        report.left_out.append(f"{what} {source} {state} (`lookalike storage verify` "
                               "checks the home)")
        return False
    manifest.files[name] = sha256
    return True


def _copy_originals(session: Session, settings: Settings, folder: Path,
                    manifest: BackupManifest, report: BackupReport) -> None:
    """The stored original of every pending or embedded image, page by page."""
    after = 0
    while page := image_queries.live_images_after(session=session, after_id=after, limit=PAGE):
        for image in page:
            if image.status in CHECKED_STATUSES and image.stored_path:
                report.originals += _add(settings.layout.resolve(image.stored_path),
                                         image.sha256, f"image {image.id}", settings, folder,
                                         manifest, report)
        after = page[-1].id


def _copy_videos(session: Session, settings: Settings, folder: Path,
                 manifest: BackupManifest, report: BackupReport) -> None:
    """The stored clip of every video (its frames are originals, copied above)."""
    after = 0
    while page := video_queries.videos_after(session=session, after_id=after, limit=PAGE):
        for video in page:
            if video.stored_path:
                report.originals += _add(settings.layout.resolve(video.stored_path),
                                         video.sha256, f"video {video.id}", settings, folder,
                                         manifest, report)
        after = page[-1].id


def _copy_text_models(session: Session, settings: Settings, folder: Path,
                      manifest: BackupManifest, report: BackupReport) -> None:
    """Each catalogued text model's file (its row is in the catalog copy)."""
    for model in textmodels.list_text_models(session=session):
        report.space_files += _add(settings.layout.resolve(model.path), model.sha256,
                                   f"text model '{model.name}'", settings, folder, manifest,
                                   report)


def _copy_detectors(settings: Settings, folder: Path, manifest: BackupManifest,
                    report: BackupReport) -> None:
    """The trained detectors (files under detectors/, named by their file names)."""
    for path in sorted(settings.layout.detectors.glob("*.pt")):
        report.space_files += _add(path, file_sha256(path) or "", f"detector {path.stem}",
                                   settings, folder, manifest, report)


def _copy_video_classifiers(settings: Settings, folder: Path, manifest: BackupManifest,
                            report: BackupReport) -> None:
    """The trained video classifiers and the document naming them and the default one."""
    document = settings.layout.weights / REGISTRY
    if not document.is_file():
        return
    for path, sha256 in classifier_files(settings):
        report.space_files += _add(path, sha256, "video classifier", settings, folder,
                                   manifest, report)
    report.space_files += _add(document, file_sha256(document) or "", "video classifiers' list",
                               settings, folder, manifest, report)


def _copy_space_files(space: Space, settings: Settings, folder: Path,
                      manifest: BackupManifest, report: BackupReport) -> None:
    for named in space_files(space, settings=settings):
        report.space_files += _add(named.path, named.sha256,
                                   f"space '{space.name}' {named.kind} file", settings, folder,
                                   manifest, report)


def _copy_snapshots(session: Session, space: Space, settings: Settings, folder: Path,
                    manifest: BackupManifest, report: BackupReport) -> None:
    """The newest valid snapshot the catalog has reached, and the one it records as newest
    (which `index verify` looks for) when that is another; none means a restore rebuilds
    the index from the catalog."""
    directory = space_directory(settings.layout.indexes, space)
    reached = embedding_queries.latest_seq(session=session, space_id=space.id)
    recorded = snapshot_queries.latest_snapshot(session=session, space_id=space.id)
    wanted = {Path(recorded.path).name} if recorded else set()
    newest = True
    for snapshot in list_snapshots(directory):
        if snapshot.watermark > reached:
            continue
        if (newest or snapshot.file in wanted) and _add_snapshot(
                directory, snapshot, settings, folder, manifest):
            report.snapshots += 1
            newest = False
            wanted.discard(snapshot.file)


def _add_snapshot(directory: Path, snapshot: SnapshotManifest, settings: Settings,
                  folder: Path, manifest: BackupManifest) -> bool:
    """Copy a snapshot's index file and manifest, if the copy checks out against it (the
    source may be pruned or replaced meanwhile)."""
    target = folder / settings.layout.stored(directory)
    files = [snapshot.file, snapshot.file.removesuffix(".faiss") + ".json"]
    digests = [copy_hashed(directory / name, target / name) for name in files]
    if None in digests or file_problem(target, snapshot) is not None:
        for name in files:
            (target / name).unlink(missing_ok=True)
        return False
    for name, digest in zip(files, digests, strict=True):
        manifest.files[(Path(settings.layout.stored(directory)) / name).as_posix()] = str(digest)
    return True
