"""The data folder's map: where the catalog, originals, thumbnails, indexes, trained weights,
whitening files and job work folders live under LOOKALIKE_HOME. Nothing else spells a path."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class DataLayout:
    """Every folder and file of one data folder, derived from its root."""

    home: Path

    @property
    def catalog_db(self) -> Path:
        """The SQLite catalog, when no database URL is configured."""
        return self.home / "catalog.db"

    @property
    def originals(self) -> Path:
        """Uploaded and ingested files, content-addressed by sha256."""
        return self.home / "originals"

    @property
    def thumbnails(self) -> Path:
        return self.home / "thumbnails"

    @property
    def indexes(self) -> Path:
        """One folder per space with its FAISS snapshots."""
        return self.home / "indexes"

    @property
    def weights(self) -> Path:
        """Trained backbone and head weights, content-addressed."""
        return self.home / "weights"

    @property
    def whitening(self) -> Path:
        """Spaces' learned whitening, content-addressed."""
        return self.home / "whitening"

    @property
    def engines(self) -> Path:
        """Backbones exported for inference engines, by weights sha256 (rebuilt if missing)."""
        return self.home / "engines"

    def job(self, job_id: int) -> Path:
        """A training job's work folder: checkpoints and curves."""
        return self.home / "jobs" / str(job_id)
