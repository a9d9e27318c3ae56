"""The data folder's map: where the catalog, originals, thumbnails, indexes, trained weights,
whitening files and job work folders live under LOOKALIKE_HOME. Nothing else spells a path.

The catalog records a file under the home relative to the home (`originals/ab/cd/….png`),
never as an absolute path nor relative to a working directory, so that a home can be moved,
copied or restored and served from anywhere: `stored` writes such a record, `resolve` reads
one back. A file outside the home (a weight file given by hand) is recorded absolute."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class DataLayout:
    """Every folder and file of one data folder, derived from its root."""

    home: Path

    def stored(self, path: Path) -> str:
        """How the catalog records `path` (absolute): relative to the home, with forward
        slashes, when it lies under the home; absolute (and resolved) otherwise."""
        if not path.is_absolute():
            raise ValueError(f"{path} is not absolute; resolve it before recording it")
        if path.is_relative_to(self.home) and ".." not in path.parts:
            return path.relative_to(self.home).as_posix()
        resolved = path.resolve()
        if resolved.is_relative_to(self.home.resolve()):
            return resolved.relative_to(self.home.resolve()).as_posix()
        return str(resolved)

    def resolve(self, stored: str) -> Path:
        """The file a catalog record names: a relative record is under the home (wherever
        the home is now), an absolute one is taken as it is."""
        return self.home / stored

    @property
    def catalog_db(self) -> Path:
        """The SQLite catalog, when no database URL is configured."""
        return self.home / "catalog.db"

    @property
    def originals(self) -> Path:
        """Uploaded and ingested files, content-addressed by sha256."""
        return self.home / "originals"

    @property
    def videos(self) -> Path:
        """Ingested video clips, content-addressed by sha256 (their frames are originals)."""
        return self.home / "videos"

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

    @property
    def detectors(self) -> Path:
        """Trained detectors and localization heads, one `<name>.pt` file each."""
        return self.home / "detectors"

    def job(self, job_id: int) -> Path:
        """A training job's work folder: checkpoints and curves."""
        return self.home / "jobs" / str(job_id)
