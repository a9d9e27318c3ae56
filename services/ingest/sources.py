"""What to ingest: files, folders (recursively), text files that list paths, and CSV files
with a `path` column and optional `title`, `caption` and `label` columns; and URL lists (one
URL a line, or a CSV with a `url` column and the same optional columns)."""

from __future__ import annotations

import csv
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from lookalike.services.errors import InvalidRequest
from lookalike.services.ingest.captions import (
    CAPTION_MAX,
    NO_WORDS,
    TITLE_MAX,
    Words,
    clean_text,
    is_sidecar,
)

LIST_SUFFIXES = {".txt", ".lst"}
CSV_SUFFIX = ".csv"
WORD_COLUMNS = ("title", "caption", "label")


@dataclass(frozen=True)
class IngestItem:
    """One file to ingest, with the catalog metadata it will carry."""

    path: Path
    collection: str | None = None
    label: str | None = None
    title: str | None = None
    caption: str | None = None


def _expand(path: Path, *, from_list: bool = False) -> Iterator[Path]:
    """Files under a path: folders recursively (hidden entries and the sidecar files that
    describe an image skipped), list files line by line."""
    if path.is_dir():
        for child in sorted(path.rglob("*")):
            relative = child.relative_to(path)
            if (child.is_file() and not any(p.startswith(".") for p in relative.parts)
                    and not is_sidecar(child)):
                yield child
    elif path.suffix.lower() in LIST_SUFFIXES and not from_list and path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            entry = line.strip()
            if entry and not entry.startswith("#"):
                listed = Path(entry) if Path(entry).is_absolute() else path.parent / entry
                yield from _expand(listed, from_list=True)
    else:
        yield path


@dataclass(frozen=True)
class _Row:
    """One entry of a CSV list: a path and the words and label it gives the files there."""

    path: Path
    words: Words = NO_WORDS
    label: str | None = None


@dataclass(frozen=True)
class UrlItem:
    """One URL to ingest, with the words and label a URL list gave it."""

    url: str
    title: str | None = None
    caption: str | None = None
    label: str | None = None


def _csv_rows(path: Path, key: str) -> list[tuple[str, Words, str | None]]:
    """(the `key` column, words, label) of each row of a CSV list that names something.
    InvalidRequest names the file when it lacks the `key` column or has an unknown one."""
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        columns = [name.strip().lower() for name in reader.fieldnames or []]
        unknown = sorted(set(columns) - {key, *WORD_COLUMNS})
        if key not in columns or unknown:
            raise InvalidRequest(f"{path}: a CSV list needs a header row with a '{key}' column "
                                 f"and may have {', '.join(WORD_COLUMNS)}; found "
                                 f"{', '.join(columns) or 'no header'}")
        rows = []
        for raw in reader:
            row = {name.strip().lower(): value for name, value in raw.items() if name}
            entry = (row.get(key) or "").strip()
            if entry:
                rows.append((entry, Words(title=clean_text(row.get("title"), TITLE_MAX),
                                          caption=clean_text(row.get("caption"), CAPTION_MAX),
                                          origin=path.name),
                             (row.get("label") or "").strip() or None))
    return rows


def read_csv_list(path: Path) -> list[_Row]:
    """The rows of a CSV list of paths (header row first; relative to the CSV's folder)."""
    return [_Row(path=Path(entry) if Path(entry).is_absolute() else path.parent / entry,
                 words=words, label=label) for entry, words, label in _csv_rows(path, "path")]


def read_url_list(path: Path) -> list[UrlItem]:
    """The URLs of a list file: a CSV with a `url` column (and title, caption, label), or
    any other text file with one URL a line ('#' starts a comment line)."""
    if path.suffix.lower() == CSV_SUFFIX:
        return [UrlItem(url=entry, title=words.title, caption=words.caption, label=label)
                for entry, words, label in _csv_rows(path, "url")]
    lines = (line.strip() for line in path.read_text(encoding="utf-8").splitlines())
    return [UrlItem(url=line) for line in lines if line and not line.startswith("#")]


def _listed(root: Path) -> Iterator[_Row]:
    """The files a path names, each with what a CSV list says about it."""
    if root.suffix.lower() == CSV_SUFFIX and root.is_file():
        for row in read_csv_list(root):
            for file in _expand(row.path, from_list=True):
                yield _Row(path=file, words=row.words, label=row.label)
    else:
        for file in _expand(root):
            yield _Row(path=file)


def collect_items(
    paths: Sequence[Path], *, collection: str | None = None, label_from_dir: bool = False
) -> list[IngestItem]:
    """Every file named by `paths`, once each, in a stable order; missing paths are kept so
    that the ingest reports them as failed rather than dropping them silently. A CSV list's
    title and caption win over the file's own words (sidecar, XMP, EXIF), its label over the
    folder's."""
    seen: set[Path] = set()
    items: list[IngestItem] = []
    for root in paths:
        for row in _listed(Path(root)):
            resolved = row.path.resolve()
            if resolved in seen:
                continue
            seen.add(resolved)
            label = row.label or (row.path.parent.name if label_from_dir else None)
            items.append(IngestItem(path=resolved, collection=collection, label=label,
                                    title=row.words.title, caption=row.words.caption))
    return items
