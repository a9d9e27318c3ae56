"""Ingest's copy check (`ingest --on-copy flag|skip`): each file is asked the copy question
(services/search/copies.py) against the catalog before it is stored.

`flag` stores every file and reports which ones are copies of catalogued images; `skip`
stores only the others. Copies among the files of one run are not compared with each other
(run `lookalike duplicates` afterwards for that).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from lookalike.retrieval.errors import ImageRejected
from lookalike.services.errors import InvalidRequest
from lookalike.services.ingest.sources import IngestItem
from lookalike.services.runtime import Runtime
from lookalike.services.search.copies import calibration_of, find_copies

logger = logging.getLogger(__name__)
ON_COPY = ("flag", "skip")


@dataclass
class CopyScreen:
    """The files to ingest and, for each file found to be a copy, the catalogued ids."""

    kept: list[IngestItem]
    copies: dict[str, list[int]] = field(default_factory=dict)


def screen_items(runtime: Runtime, items: Sequence[IngestItem], *, on_copy: str,
                 space_name: str | None = None,
                 progress: Callable[[int], None] | None = None) -> CopyScreen:
    """Ask the copy question of every file; with `skip` leave the copies out."""
    if on_copy not in ON_COPY:
        raise InvalidRequest(f"--on-copy {on_copy!r} is not allowed; use one of "
                             f"{', '.join(ON_COPY)}")
    calibration_of(runtime, space_name)
    screen = CopyScreen(kept=[])
    for item in items:
        found = _copies_of(runtime, item, space_name)
        if found:
            screen.copies[str(item.path)] = found
        if not found or on_copy == "flag":
            screen.kept.append(item)
        if progress is not None:
            progress(1)
    return screen


def _copies_of(runtime: Runtime, item: IngestItem, space_name: str | None) -> list[int]:
    """Catalogued ids the file is a copy of (none when it cannot be read: ingest then
    reports the failure itself)."""
    try:
        answer = find_copies(runtime, space_name=space_name, query=item.path.read_bytes())
    except (OSError, ImageRejected) as exc:
        logger.info("copy check skipped for %s: %s", item.path, exc)
        return []
    return [hit.image_id for hit in answer.copies]
