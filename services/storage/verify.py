"""The data folder's files checked against the catalog rows that name them.

An image that is not deleted names its stored original and its thumbnail; a space names its
whitening, weight and head files. A file under originals/, thumbnails/, weights/ or
whitening/ that no row names is an orphan (left by a crash between a commit and a file
removal, or put there by hand); a named file that is missing, or whose bytes do not hash to
the sha256 its row recorded, is a problem of that row (for an original, the image's sha256
is the hash of its bytes). Fixing removes the orphans, under the locks that ingests, deletes
and space creations take (a file about to be named stays), and marks pending or embedded
images whose original is missing or corrupt `failed` with the reason. No row is deleted."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from sqlalchemy.orm import Session

from lookalike.services.catalog import images as image_queries
from lookalike.services.catalog import spaces as space_queries
from lookalike.services.catalog import textmodels
from lookalike.services.catalog.models import Image
from lookalike.services.config import Settings
from lookalike.services.ingest.stored import image_files
from lookalike.services.runtime import Runtime
from lookalike.services.spaces.files import hold_space_files, space_files
from lookalike.services.storage.files import file_sha256, remove_files
from lookalike.services.storage.layout import DataLayout
from lookalike.services.video.registry import named_files

log = logging.getLogger(__name__)

PAGE = 500
# Failed images are known to be unusable already; deleted ones name no file.
CHECKED_STATUSES = ("pending", "embedded")


@dataclass(frozen=True)
class Finding:
    """A file no row names (orphan), or one a row names that is missing or corrupt."""

    kind: Literal["orphan", "missing", "corrupt"]
    path: Path
    owner: str | None = None
    image_id: int | None = None

    def __str__(self) -> str:
        return f"{self.kind} {self.path}" + (f" ({self.owner})" if self.owner else "")


@dataclass
class StorageReport:
    """What a check found, how much it looked at, and what fixing did."""

    findings: list[Finding] = field(default_factory=list)
    images: int = 0
    spaces: int = 0
    files: int = 0
    removed: list[Path] = field(default_factory=list)
    marked_failed: list[int] = field(default_factory=list)

    @property
    def remaining(self) -> list[Finding]:
        """The findings that fixing did not settle (all of them without fixing)."""
        removed, failed = set(self.removed), set(self.marked_failed)
        return [f for f in self.findings if f.path not in removed
                and (f.image_id is None or f.image_id not in failed)]


def verify_storage(runtime: Runtime, *, fix: bool = False) -> StorageReport:
    """Check every named file and every file under the data folder; with `fix`, remove the
    orphans and mark the images whose original is missing or corrupt failed."""
    report = StorageReport()
    _check_images(runtime, report)
    _check_spaces(runtime, report)
    image_orphans = _image_orphans(runtime, report)
    space_orphans = _space_orphans(runtime, report)
    report.findings += [Finding("orphan", path) for path in image_orphans + space_orphans]
    if fix:
        report.removed = (_remove_image_orphans(runtime, image_orphans)
                          + _remove_space_orphans(runtime, space_orphans))
        report.marked_failed = _mark_failed(runtime, report.findings)
        log.info("storage fixed: %d orphans removed, images %s marked failed",
                 len(report.removed), report.marked_failed)
    return report


def _check_images(runtime: Runtime, report: StorageReport) -> None:
    """Hash the stored original of every pending or embedded image, page by page."""
    after = 0
    while True:
        with runtime.read_session() as session:
            page = image_queries.live_images_after(session=session, after_id=after, limit=PAGE)
        if not page:
            return
        report.images += len(page)
        report.findings += [f for image in page
                            if (f := _original_finding(image, runtime.settings.layout))]
        after = page[-1].id


def _original_finding(image: Image, layout: DataLayout) -> Finding | None:
    """What is wrong with an image's stored original, if it must be whole and is not."""
    if image.status not in CHECKED_STATUSES or not image.stored_path:
        return None
    path = layout.resolve(image.stored_path)
    digest = file_sha256(path)
    if digest == image.sha256:
        return None
    return Finding("missing" if digest is None else "corrupt", path, f"image {image.id}",
                   image.id)


def _check_spaces(runtime: Runtime, report: StorageReport) -> None:
    """Hash every file a space names against the sha256 the space recorded."""
    with runtime.read_session() as session:
        spaces = space_queries.list_spaces(session=session)
    report.spaces = len(spaces)
    for space in spaces:
        for named in space_files(space, settings=runtime.settings):
            digest = file_sha256(named.path)
            if digest != named.sha256:
                report.findings.append(Finding(
                    "missing" if digest is None else "corrupt", named.path,
                    f"space '{space.name}' {named.kind} file"))


def _files_under(root: Path) -> list[Path]:
    """The files under a folder, in order, leaving out hidden ones: the temporary files of
    writes in flight (`.<name>.<random>.tmp`)."""
    if not root.is_dir():
        return []
    return sorted(path for path in root.rglob("*") if path.is_file()
                  and not any(part.startswith(".") for part in path.relative_to(root).parts))


def _chunks(paths: Sequence[Path]) -> list[Sequence[Path]]:
    return [paths[start:start + PAGE] for start in range(0, len(paths), PAGE)]


def _image_orphans(runtime: Runtime, report: StorageReport) -> list[Path]:
    """Files under originals/ and thumbnails/ that no image row names."""
    layout = runtime.settings.layout
    files = _files_under(layout.originals) + _files_under(layout.thumbnails)
    report.files += len(files)
    orphans: list[Path] = []
    for chunk in _chunks(files):
        with runtime.read_session() as session:
            orphans += _unnamed_image_files(session, chunk, layout)
    return orphans


def _unnamed_image_files(session: Session, files: Sequence[Path],
                         layout: DataLayout) -> list[Path]:
    """Those of `files` (named by sha256) that no image row that is not deleted names."""
    rows = image_queries.images_by_shas(session=session, shas=[path.stem for path in files])
    return [path for path in files if not _names(rows.get(path.stem), path, layout)]


def _names(image: Image | None, path: Path, layout: DataLayout) -> bool:
    if image is None or image.status == "deleted":
        return False
    return path.resolve() in {named.resolve() for named in image_files(layout, image)}


def _space_orphans(runtime: Runtime, report: StorageReport) -> list[Path]:
    """Files under weights/ and whitening/ that no space names."""
    layout = runtime.settings.layout
    files = _files_under(layout.weights) + _files_under(layout.whitening)
    report.files += len(files)
    with runtime.read_session() as session:
        named = _named_space_files(session, runtime.settings)
    return [path for path in files if path.resolve() not in named]


def _named_space_files(session: Session, settings: Settings) -> set[Path]:
    """The files under weights/ and whitening/ that a space, a text model or the video
    classifiers name: none of them is an orphan (`--fix` would delete a trained model)."""
    spaces = {named.path.resolve() for space in space_queries.list_spaces(session=session)
              for named in space_files(space, settings=settings)}
    texts = {settings.layout.resolve(model.path).resolve()
             for model in textmodels.list_text_models(session=session)}
    return spaces | texts | named_files(settings)


def _remove_image_orphans(runtime: Runtime, orphans: list[Path]) -> list[Path]:
    """Remove those orphans that no image row names still, while image writes are held off:
    no ingest can name one between this check and its removal."""
    removed: list[Path] = []
    for chunk in _chunks(orphans):
        with runtime.session() as session:
            image_queries.hold_image_writes(session=session)
            removed += remove_files(_unnamed_image_files(session, chunk,
                                                         runtime.settings.layout))
            session.commit()
    return removed


def _remove_space_orphans(runtime: Runtime, orphans: list[Path]) -> list[Path]:
    """Remove those orphans that no space names still, under the lock on space files."""
    with runtime.session() as session:
        hold_space_files(session)
        named = _named_space_files(session, runtime.settings)
        removed = remove_files(path for path in orphans if path.resolve() not in named)
        session.commit()
    return removed


def _mark_failed(runtime: Runtime, findings: list[Finding]) -> list[int]:
    """Mark `failed`, with the reason, the images whose original is still missing or corrupt
    when looked at again under their rows' locks (an ingest of the same bytes may have put
    it back meanwhile); the ids marked."""
    ids = sorted({f.image_id for f in findings if f.image_id is not None})
    marked = []
    with runtime.session() as session:
        for image in image_queries.lock_images(session=session, image_ids=ids):
            finding = _original_finding(image, runtime.settings.layout)
            if finding is None:
                continue
            image_queries.set_image_status(session=session, image_id=image.id, status="failed",
                                           error=_failure(finding))
            marked.append(image.id)
        session.commit()
    return marked


def _failure(finding: Finding) -> str:
    state = ("is missing" if finding.kind == "missing"
             else "does not hash to the image's sha256")
    return (f"its stored original {finding.path} {state} (found by `lookalike storage verify "
            "--fix`); ingest the file again to restore it")
