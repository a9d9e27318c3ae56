"""Keyword search over image titles and captions with the database's own full-text engine:
PostgreSQL `caption_tsv` (English stemming, GIN index), SQLite FTS5 `image_fts` (porter
stemmer); both are kept in step with the image rows by the database (migration 0007).

Every word of the query must occur (stemmed), in any order; PostgreSQL also drops English
stop words ("the", "of") from the query, so queries made of content words give the same ids
on both databases."""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.orm import Session

from lookalike.services.errors import InvalidRequest

# Names the models do not describe (the migration made them): schema comparison skips them.
FULL_TEXT_TABLE = "image_fts"
FULL_TEXT_COLUMN = "caption_tsv"
FULL_TEXT_INDEX = "ix_image_caption_tsv"
MAX_QUERY_CHARS = 1000
MAX_QUERY_WORDS = 32
_WORD = re.compile(r"\w+", re.UNICODE)


@dataclass(frozen=True)
class TextMatch:
    image_id: int
    rank: float


def managed_by_models(obj: Any, name: str | None, type_: str, reflected: bool,
                      compare_to: Any) -> bool:
    """Alembic include_object: False for the full-text objects migration 0007 made by hand."""
    if name is None:
        return True
    return not (name.startswith(FULL_TEXT_TABLE) or name in (FULL_TEXT_COLUMN, FULL_TEXT_INDEX))


def query_words(query: str) -> list[str]:
    """The words of a keyword query; InvalidRequest when it has none or is too long."""
    if len(query) > MAX_QUERY_CHARS:
        raise InvalidRequest(f"text query is {len(query)} characters; at most "
                             f"{MAX_QUERY_CHARS} are searched")
    words = [word.lower() for word in _WORD.findall(query)]
    if not words:
        raise InvalidRequest("text query has no words to search for; give at least one "
                             "letter or digit")
    if len(words) > MAX_QUERY_WORDS:
        raise InvalidRequest(f"text query has {len(words)} words; at most {MAX_QUERY_WORDS}")
    return words


def match_captions(*, session: Session, query: str, limit: int,
                   within: Collection[int] | None = None) -> list[TextMatch]:
    """Up to `limit` live images whose title or caption holds every word of `query`, best
    match first (ties by id); `within` restricts them to these ids."""
    words = query_words(query)
    if session.get_bind().dialect.name == "postgresql":
        sql = ("SELECT id, ts_rank_cd(caption_tsv, q) AS rank FROM image, "
               "plainto_tsquery('english', :query) AS q WHERE caption_tsv @@ q "
               "AND status = 'embedded' {within} ORDER BY rank DESC, id LIMIT :limit")
        params: dict[str, Any] = {"query": " ".join(words), "limit": limit}
    else:
        sql = ("SELECT image.id, -bm25(image_fts) AS rank FROM image_fts "
               "JOIN image ON image.id = image_fts.rowid WHERE image_fts MATCH :query "
               "AND image.status = 'embedded' {within} ORDER BY rank DESC, image.id "
               "LIMIT :limit")
        params = {"query": " ".join(f'"{word}"' for word in words), "limit": limit}
    statement = text(sql.format(within="AND image.id IN :within" if within is not None
                                else ""))
    if within is not None:
        if not within:
            return []
        statement = statement.bindparams(bindparam("within", expanding=True))
        params["within"] = list(within)
    rows = session.execute(statement, params)
    return [TextMatch(int(image_id), float(rank)) for image_id, rank in rows]
