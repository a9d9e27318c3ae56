"""The three scopes a key can hold, and which one grants which."""

from __future__ import annotations

from lookalike.services.errors import InvalidRequest

SEARCH = "search"
INGEST = "ingest"
ADMIN = "admin"
SCOPES = (SEARCH, INGEST, ADMIN)


def parse_scopes(text: str) -> frozenset[str]:
    """'search,ingest' -> {'search', 'ingest'}; InvalidRequest naming an unknown scope."""
    scopes = frozenset(part.strip() for part in text.split(",") if part.strip())
    unknown = sorted(scopes - set(SCOPES))
    if unknown or not scopes:
        raise InvalidRequest(f"unknown or missing scope {', '.join(unknown) or '(none)'}; "
                             f"allowed: {', '.join(SCOPES)} (comma-separated)")
    return scopes


def grants(held: frozenset[str], needed: str) -> bool:
    """Whether keys with scopes `held` may do what needs `needed`: admin may do anything."""
    return needed in held or ADMIN in held
