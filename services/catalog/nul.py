"""No NUL (0x00) character reaches the catalog. PostgreSQL refuses one in any text value (its
driver's DataError was a 500 for a search filter, a caption or an upload's file name holding
one) and SQLite stores it, so both catalogs refuse it alike, before the statement runs, as the
caller's error: a 422 over HTTP, one failed item of a batch."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, event

from lookalike.services.errors import InvalidRequest

NUL = "\x00"


def nul_problem(what: str, value: str | None) -> str | None:
    """Why `value` cannot be stored as the text `what`, or None when it holds no NUL."""
    if value is None or NUL not in value:
        return None
    return (f"{what} holds a NUL (0x00) character at position {value.index(NUL)}, which the "
            "catalog cannot store; remove it")


def holds_nul(value: object) -> bool:
    """Whether a statement parameter (a text, or rows / mappings / arrays of them) holds one."""
    if isinstance(value, str):
        return NUL in value
    if isinstance(value, dict):
        return any(holds_nul(item) for item in value.values())
    if isinstance(value, list | tuple):
        return any(holds_nul(item) for item in value)
    return False


def refuse_nul_parameters(engine: Engine) -> None:
    """Refuse (InvalidRequest) every statement on `engine` with a NUL in a text parameter: the
    net under the checks that name their field (metadata, request bodies), for every text
    they do not name (a filter, a space or detector name, a path parameter)."""

    @event.listens_for(engine, "before_cursor_execute")
    def _refuse(_conn: Any, _cursor: Any, _statement: str, parameters: Any, _context: Any,
                _executemany: bool) -> None:
        if holds_nul(parameters):
            raise InvalidRequest("a text value of this request holds a NUL (0x00) "
                                 "character, which the catalog cannot store; remove it")
