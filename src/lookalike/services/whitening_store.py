"""A space's PCA whitening as a content-addressed file under LOOKALIKE_HOME, checked on load."""

from __future__ import annotations

import hashlib
from pathlib import Path

from lookalike.retrieval.errors import WhiteningError
from lookalike.retrieval.whitening import PCAWhitening
from lookalike.services.catalog.models import Space
from lookalike.services.config import Settings
from lookalike.services.storage import write_atomic


def whitening_dir(settings: Settings) -> Path:
    return settings.home / "whitening"


def store_whitening(whitening: PCAWhitening, *, settings: Settings) -> tuple[Path, str]:
    """Write the whitening as whitening/<sha256>.npz; returns (path, sha256)."""
    data = whitening.to_bytes()
    sha = hashlib.sha256(data).hexdigest()
    return write_atomic(whitening_dir(settings) / f"{sha}.npz", data), sha


def space_whitening(space: Space, *, settings: Settings) -> PCAWhitening | None:
    """The whitening a space was defined with (None without one), verified by its sha256."""
    sha = space.options.get("whitening_sha256")
    if not sha:
        return None
    path = whitening_dir(settings) / f"{sha}.npz"
    if not path.is_file():
        raise WhiteningError(f"space '{space.name}' needs the whitening file {path}, which is "
                             "missing; restore it or create the space again")
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != sha:
        raise WhiteningError(f"{path} does not match the sha256 recorded by space "
                             f"'{space.name}'; restore the file or create the space again")
    return PCAWhitening.from_bytes(data)
