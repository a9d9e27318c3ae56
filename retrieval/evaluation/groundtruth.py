"""Readers of standard retrieval benchmarks' ground truth from a folder the user provides.

Revisited Oxford 5k / Paris 6k: a `gnd_<name>.pkl` beside `jpg/<image>.jpg`; the pickle is a
dict with "imlist" (gallery names), "qimlist" (query names) and "gnd" (per query: "easy",
"hard", "junk" gallery index lists and a "bbx" query box). INRIA Holidays: `<group><nn>.jpg`
files (100000.jpg, 100001.jpg, ...); the first image of a group is its query, the rest are the
images relevant to it. Every index returned is a row of the benchmark's gallery list.
"""

from __future__ import annotations

import io
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lookalike.retrieval.errors import GroundTruthMalformed, GroundTruthNotFound, UnknownProtocol

__all__ = [
    "PROTOCOLS",
    "HolidaysGroundTruth",
    "RevisitedGroundTruth",
    "RevisitedQuery",
    "load_holidays",
    "load_revisited",
    "revisited_protocol",
]

PROTOCOLS = ("easy", "medium", "hard")
_IMAGE_SUFFIXES = (".jpg", ".jpeg")
# The only globals a ground-truth pickle may name: numpy's array reconstruction helpers.
_PICKLE_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
}


@dataclass(frozen=True)
class RevisitedQuery:
    """One Revisited Oxford/Paris query: its image, box (x0, y0, x1, y1) and labelled images."""

    name: str
    bbox: tuple[float, float, float, float] | None
    easy: frozenset[int]
    hard: frozenset[int]
    junk: frozenset[int]


@dataclass(frozen=True)
class RevisitedGroundTruth:
    """A Revisited Oxford/Paris benchmark: gallery names, queries, and where the images are."""

    folder: Path
    gallery: tuple[str, ...]
    queries: tuple[RevisitedQuery, ...]

    def image_path(self, name: str) -> Path:
        """The file of image `name` (a gallery or query name)."""
        return self.folder / "jpg" / f"{name}.jpg"

    def gallery_paths(self) -> list[Path]:
        """Files of the gallery images, in index order."""
        return [self.image_path(name) for name in self.gallery]

    def query_paths(self) -> list[Path]:
        """Files of the query images (crop them to `bbox` for the standard protocol)."""
        return [self.image_path(query.name) for query in self.queries]


@dataclass(frozen=True)
class HolidaysGroundTruth:
    """INRIA Holidays: every image is in the gallery; each query's own row is junk for it."""

    folder: Path
    gallery: tuple[str, ...]
    queries: tuple[int, ...]
    relevant: tuple[frozenset[int], ...]

    def gallery_paths(self) -> list[Path]:
        """Files of the gallery images, in index order."""
        return [self.folder / name for name in self.gallery]

    def junk(self) -> list[set[int]]:
        """Per query, its own gallery row: dropped from its ranking before scoring."""
        return [{query} for query in self.queries]


class _GroundTruthUnpickler(pickle.Unpickler):
    """Unpickler that builds containers and numpy arrays and refuses every other global."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _PICKLE_GLOBALS:
            raise pickle.UnpicklingError(f"global '{module}.{name}' is not allowed")
        return super().find_class(module, name)


def _read_pickle(path: Path) -> Any:
    """The object in a ground-truth pickle, read without running arbitrary code."""
    try:
        return _GroundTruthUnpickler(io.BytesIO(path.read_bytes())).load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as exc:
        raise GroundTruthMalformed(f"{path}: not a readable ground-truth pickle ({exc})") from exc


def _find_revisited_pickle(path: Path) -> Path:
    """`path` itself if it is a file, else the single gnd_*.pkl inside the folder `path`."""
    if path.is_file():
        return path
    if not path.is_dir():
        raise GroundTruthNotFound(f"{path}: no such ground-truth file or folder")
    found = sorted(path.glob("gnd_*.pkl"))
    if len(found) != 1:
        names = ", ".join(p.name for p in found) or "none"
        raise GroundTruthNotFound(
            f"{path}: expected exactly one gnd_*.pkl (e.g. gnd_roxford5k.pkl), found {names}"
        )
    return found[0]


def _names(path: Path, data: dict[str, Any], key: str) -> tuple[str, ...]:
    """The list of image names under `key`, checked to be strings."""
    names = data.get(key)
    if not isinstance(names, list | tuple) or not all(isinstance(n, str) for n in names):
        raise GroundTruthMalformed(f"{path}: '{key}' must be a list of image names")
    return tuple(names)


def _indices(path: Path, entry: dict[str, Any], key: str, query: int, size: int) -> frozenset[int]:
    """Gallery indices under `key` of one query's entry, checked to be in range."""
    try:
        values = frozenset(int(v) for v in entry.get(key, ()))
    except (TypeError, ValueError) as exc:
        raise GroundTruthMalformed(
            f"{path}: gnd[{query}]['{key}'] must be a list of gallery indices"
        ) from exc
    bad = [v for v in values if not 0 <= v < size]
    if bad:
        raise GroundTruthMalformed(
            f"{path}: gnd[{query}]['{key}'] holds index {bad[0]}; allowed: 0..{size - 1}"
        )
    return values


def _bbox(
    path: Path, entry: dict[str, Any], query: int
) -> tuple[float, float, float, float] | None:
    """The query box (x0, y0, x1, y1), or None where the entry has none."""
    box = entry.get("bbx")
    if box is None:
        return None
    try:
        x0, y0, x1, y1 = (float(v) for v in box)
    except (TypeError, ValueError) as exc:
        raise GroundTruthMalformed(
            f"{path}: gnd[{query}]['bbx'] must be 4 numbers (x0, y0, x1, y1)"
        ) from exc
    return x0, y0, x1, y1


def _queries(path: Path, data: dict[str, Any], size: int) -> tuple[RevisitedQuery, ...]:
    """The per-query entries of a Revisited pickle, checked against the gallery size."""
    names, entries = _names(path, data, "qimlist"), data.get("gnd")
    if not isinstance(entries, list | tuple) or len(entries) != len(names):
        raise GroundTruthMalformed(
            f"{path}: 'gnd' must be a list with one dict per query ({len(names)} queries)"
        )
    queries = []
    for q, (name, entry) in enumerate(zip(names, entries, strict=True)):
        if not isinstance(entry, dict) or not {"easy", "hard", "junk"} <= entry.keys():
            raise GroundTruthMalformed(
                f"{path}: gnd[{q}] must be a dict with 'easy', 'hard' and 'junk' index lists"
            )
        easy, hard, junk = (_indices(path, entry, key, q, size) for key in ("easy", "hard", "junk"))
        queries.append(RevisitedQuery(name, _bbox(path, entry, q), easy, hard, junk))
    return tuple(queries)


def load_revisited(path: Path, *, check_images: bool = True) -> RevisitedGroundTruth:
    """Read a Revisited Oxford/Paris ground truth from its pickle or the folder holding it.

    With `check_images` every gallery and query image must exist under `<folder>/jpg/`.
    """
    pickle_path = _find_revisited_pickle(Path(path))
    data = _read_pickle(pickle_path)
    if not isinstance(data, dict):
        raise GroundTruthMalformed(
            f"{pickle_path}: expected a dict with 'imlist', 'qimlist' and 'gnd', "
            f"got {type(data).__name__}"
        )
    gallery = _names(pickle_path, data, "imlist")
    truth = RevisitedGroundTruth(
        pickle_path.parent, gallery, _queries(pickle_path, data, len(gallery))
    )
    if check_images:
        missing = [p for p in truth.gallery_paths() + truth.query_paths() if not p.is_file()]
        if missing:
            raise GroundTruthNotFound(
                f"{len(missing)} benchmark images are missing, e.g. {missing[0]}; "
                f"expected every image of {pickle_path.name} as {truth.folder}/jpg/<name>.jpg"
            )
    return truth


def revisited_protocol(
    truth: RevisitedGroundTruth, protocol: str
) -> tuple[list[set[int]], list[set[int]]]:
    """(relevant, junk) per query: easy = E / J+H, medium = E+H / J, hard = H / J+E."""
    key = protocol.lower()
    if key not in PROTOCOLS:
        raise UnknownProtocol(f"unknown protocol '{protocol}'; allowed: {', '.join(PROTOCOLS)}")
    relevant, junk = [], []
    for query in truth.queries:
        positives = {"easy": query.easy, "medium": query.easy | query.hard, "hard": query.hard}
        ignored = {
            "easy": query.junk | query.hard,
            "medium": query.junk,
            "hard": query.junk | query.easy,
        }
        relevant.append(set(positives[key]))
        junk.append(set(ignored[key]))
    return relevant, junk


def _holidays_folder(folder: Path) -> Path:
    """The folder holding the Holidays images: `folder` itself or its `jpg/` subfolder."""
    if not folder.is_dir():
        raise GroundTruthNotFound(f"{folder}: no such Holidays folder")
    return folder / "jpg" if (folder / "jpg").is_dir() else folder


def load_holidays(folder: Path) -> HolidaysGroundTruth:
    """Read INRIA Holidays from its image names: group = name // 100, first image = query."""
    images = _holidays_folder(Path(folder))
    files = sorted(p.name for p in images.iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES)
    if not files:
        raise GroundTruthNotFound(
            f"{images}: no .jpg images (expected 100000.jpg, 100001.jpg, ...)"
        )
    bad = [name for name in files if not (Path(name).stem.isdigit() and len(Path(name).stem) == 6)]
    if bad:
        raise GroundTruthMalformed(
            f"{images / bad[0]}: Holidays image names must be 6 digits, like 100000.jpg"
        )
    groups: dict[int, list[int]] = {}
    for row, name in enumerate(files):
        groups.setdefault(int(Path(name).stem) // 100, []).append(row)
    members = [groups[g] for g in sorted(groups)]
    return HolidaysGroundTruth(
        folder=images,
        gallery=tuple(files),
        queries=tuple(rows[0] for rows in members),
        relevant=tuple(frozenset(rows[1:]) for rows in members),
    )
