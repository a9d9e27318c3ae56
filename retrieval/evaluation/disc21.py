"""The DISC21 (Image Similarity Challenge 2021) layout: a ground-truth CSV of query/reference
pairs and the two image folders.

A data folder holds `queries/` (Q00000.jpg, ...), `references/` (R000000.jpg, ...) and one
ground-truth CSV (a `*ground*truth*.csv`, or the file given): a header `query_id,reference_id`,
then one row per query; an empty reference means the query copies no reference (a distractor
query). Names are image stems, without the suffix.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from lookalike.retrieval.errors import GroundTruthMalformed, GroundTruthNotFound

__all__ = ["Disc21", "load_disc21", "read_disc21_pairs"]

_SUFFIXES = (".jpg", ".jpeg", ".png")
_HEADER = ("query_id", "reference_id")


def read_disc21_pairs(path: Path) -> dict[str, str | None]:
    """query id -> its reference id (None: the query copies no reference), in file order."""
    if not path.is_file():
        raise GroundTruthNotFound(f"{path}: no DISC21 ground-truth CSV there")
    with path.open(newline="", encoding="utf-8") as stream:
        rows = list(csv.reader(stream))
    if not rows or tuple(cell.strip() for cell in rows[0][:2]) != _HEADER:
        raise GroundTruthMalformed(f"{path}: the first line must be 'query_id,reference_id'")
    pairs: dict[str, str | None] = {}
    for number, row in enumerate(rows[1:], start=2):
        if not row or not row[0].strip():
            raise GroundTruthMalformed(f"{path}:{number}: a row needs a query id")
        query = row[0].strip()
        reference = row[1].strip() if len(row) > 1 else ""
        if query in pairs and pairs[query] != (reference or None):
            raise GroundTruthMalformed(f"{path}:{number}: query {query} is listed twice with "
                                       "different references")
        pairs[query] = reference or None
    return pairs


def _images(folder: Path) -> dict[str, Path]:
    """Image stem -> path, for every image in the folder."""
    if not folder.is_dir():
        raise GroundTruthNotFound(f"{folder}: no such image folder (DISC21 needs queries/ and "
                                  "references/ beside the ground-truth CSV)")
    return {p.stem: p for p in sorted(folder.iterdir()) if p.suffix.lower() in _SUFFIXES}


@dataclass(frozen=True)
class Disc21:
    """Query and reference image paths, and each query's reference row (-1: none)."""

    queries: tuple[Path, ...]
    references: tuple[Path, ...]
    truth: tuple[int, ...]


def _ground_truth_file(folder: Path) -> Path:
    """The one `*ground*truth*.csv` in the folder."""
    found = sorted(p for p in folder.glob("*.csv") if "ground" in p.name.lower()
                   and "truth" in p.name.lower())
    if len(found) != 1:
        raise GroundTruthNotFound(f"{folder}: expected one *ground*truth*.csv, found "
                                  f"{len(found)}; give the file itself")
    return found[0]


def load_disc21(folder: Path, *, groundtruth: Path | None = None,
                limit: int | None = None) -> Disc21:
    """The ground truth's queries (the first `limit`) and every reference image."""
    folder = Path(folder)
    pairs = read_disc21_pairs(groundtruth or _ground_truth_file(folder))
    queries, references = _images(folder / "queries"), _images(folder / "references")
    rows = {name: row for row, name in enumerate(references)}
    chosen = list(pairs.items())[:limit]
    missing = [q for q, _ in chosen if q not in queries]
    missing += [r for _, r in chosen if r is not None and r not in rows]
    if missing:
        raise GroundTruthNotFound(f"{folder}: image {missing[0]} of the ground truth is not "
                                  "in queries/ or references/")
    return Disc21(tuple(queries[q] for q, _ in chosen), tuple(references.values()),
                  tuple(-1 if r is None else rows[r] for _, r in chosen))
