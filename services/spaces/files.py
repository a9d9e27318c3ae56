"""The files a space is built from (its whitening, its fine-tuned weight and head files) and
how long those under LOOKALIKE_HOME live: exactly as long as a space names them.

They are content-addressed, so a space created with the same whitening as a space being
deleted names the very file that the delete is about to free. Both sides therefore hold the
lock on every space row (`hold_space_files`): a creation from writing its files to its
commit, a delete while it removes, after its commit, the files that no space names then."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from sqlalchemy.orm import Session

from lookalike.services.catalog import spaces as space_queries
from lookalike.services.catalog.models import Space
from lookalike.services.config import Settings
from lookalike.services.runtime import Runtime
from lookalike.services.storage.files import remove_files


@dataclass(frozen=True)
class SpaceFile:
    """A file a space names, with the sha256 it recorded for it."""

    path: Path
    sha256: str
    kind: Literal["whitening", "weights", "head"]


def space_files(space: Space, *, settings: Settings) -> list[SpaceFile]:
    """Every file the space is built from: its whitening, weight file and head file."""
    options = space.options
    files = []
    if options.whitening_sha256:
        files.append(SpaceFile(settings.layout.whitening / f"{options.whitening_sha256}.npz",
                               options.whitening_sha256, "whitening"))
    if options.weights_file and space.weights_sha256:
        files.append(SpaceFile(settings.layout.resolve(options.weights_file).resolve(),
                               space.weights_sha256, "weights"))
    if options.head is not None:
        files.append(SpaceFile(settings.layout.resolve(options.head.file).resolve(),
                               options.head.sha256, "head"))
    return files


def owned_files(space: Space, *, settings: Settings) -> list[SpaceFile]:
    """The space's files that lookalike wrote under LOOKALIKE_HOME: its whitening, and the
    weight and head files a fine-tuning job stored; weight files given by hand are the
    user's and never removed."""
    trained = settings.layout.weights.resolve()
    return [f for f in space_files(space, settings=settings)
            if f.kind == "whitening" or f.path.parent == trained]


def hold_space_files(session: Session) -> None:
    """Take the lock under which space files are written and released: every space row (on
    SQLite, the write transaction), until the transaction ends."""
    space_queries.lock_spaces(session=session, space_ids=None)


def release_files(runtime: Runtime, files: list[SpaceFile]) -> list[SpaceFile]:
    """Remove those of a deleted space's owned files that no space names now; the removed."""
    with runtime.session() as session:
        hold_space_files(session)
        named = {f.path for space in space_queries.list_spaces(session=session)
                 for f in space_files(space, settings=runtime.settings)}
        unnamed = [f for f in files if f.path not in named]
        removed = set(remove_files(f.path for f in unnamed))
        session.commit()
    return [f for f in unnamed if f.path in removed]
