"""What to ingest: files, folders (recursively) and text files that list paths."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from lookalike.services.ingest.captions import is_sidecar

LIST_SUFFIXES = {".txt", ".lst"}


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


def collect_items(
    paths: Sequence[Path], *, collection: str | None = None, label_from_dir: bool = False
) -> list[IngestItem]:
    """Every file named by `paths`, once each, in a stable order; missing paths are kept so
    that the ingest reports them as failed rather than dropping them silently."""
    seen: set[Path] = set()
    items: list[IngestItem] = []
    for root in paths:
        for file in _expand(Path(root)):
            resolved = file.resolve()
            if resolved in seen:
                continue
            seen.add(resolved)
            label = file.parent.name if label_from_dir else None
            items.append(IngestItem(path=resolved, collection=collection, label=label))
    return items
