"""A space's PCA whitening as a content-addressed file under LOOKALIKE_HOME, checked on load."""

from __future__ import annotations

import hashlib
from pathlib import Path

from lookalike.retrieval.embedding.whitening import PCAWhitening
from lookalike.retrieval.errors import WhiteningError
from lookalike.services.catalog.models import Space
from lookalike.services.config import Settings
from lookalike.services.storage.files import read_verified, write_atomic


def store_whitening(whitening: PCAWhitening, *, settings: Settings) -> tuple[Path, str]:
    """Write the whitening as whitening/<sha256>.npz; returns (path, sha256)."""
    data = whitening.to_bytes()
    sha = hashlib.sha256(data).hexdigest()
    return write_atomic(settings.layout.whitening / f"{sha}.npz", data), sha


def space_whitening(space: Space, *, settings: Settings) -> PCAWhitening | None:
    """The whitening a space was defined with (None without one), verified by its sha256."""
    sha = space.options.whitening_sha256
    if not sha:
        return None
    data = read_verified(settings.layout.whitening / f"{sha}.npz", sha, what="the whitening file",
                         space=space.name, error=WhiteningError)
    return PCAWhitening.from_bytes(data)
