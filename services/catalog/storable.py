"""Only text the catalog can store reaches it: no NUL (0x00) character and no unpaired UTF-16
surrogate (a JSON "\\ud800" decodes to one). PostgreSQL's driver refused the one and both
drivers failed to encode the other mid-request (a 500 for a search filter, a caption, a
collection or an upload's file name), and SQLite stored a NUL; so both catalogs refuse them
alike, before the statement runs, as the caller's error: a 422 over HTTP, one failed item of a
batch, a job refused when it is asked for."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import Engine, event

from lookalike.services.errors import InvalidRequest

UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
REFUSAL = ("holds a NUL (0x00) character or an unpaired surrogate, which the catalog "
           "cannot store; remove it")


def _named(char: str) -> str:
    return ("a NUL (0x00) character" if char == "\x00"
            else f"an unpaired surrogate (U+{ord(char):04X})")


def text_problem(what: str, value: str | None) -> str | None:
    """Why `value` cannot be stored as the text `what`, or None when it can."""
    found = UNSTORABLE.search(value) if value else None
    if found is None:
        return None
    return (f"{what} holds {_named(found.group())} at position {found.start()}, which the "
            "catalog cannot store; remove it")


def storable(value: str) -> str:
    """`value` without what the catalog cannot store: for text read from files (EXIF pads its
    strings with NULs), where the file is still worth keeping."""
    return UNSTORABLE.sub("", value)


def holds_unstorable(value: object) -> bool:
    """Whether a statement parameter (a text, or rows / mappings / arrays of them) holds what
    the catalog cannot store."""
    if isinstance(value, str):
        return UNSTORABLE.search(value) is not None
    if isinstance(value, dict):
        return any(holds_unstorable(item) for item in value.values())
    if isinstance(value, list | tuple):
        return any(holds_unstorable(item) for item in value)
    return False


def refuse_unstorable_parameters(engine: Engine) -> None:
    """Refuse (InvalidRequest) every statement on `engine` with unstorable text in a
    parameter: the net under the checks that name their field (metadata, request bodies),
    for every text they do not name (a filter, a space or detector name, a path parameter)."""

    @event.listens_for(engine, "before_cursor_execute")
    def _refuse(_conn: Any, _cursor: Any, _statement: str, parameters: Any, _context: Any,
                _executemany: bool) -> None:
        if holds_unstorable(parameters):
            raise InvalidRequest(f"a text value of this request {REFUSAL}")
