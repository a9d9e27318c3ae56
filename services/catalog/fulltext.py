"""Keyword search over image titles and captions with the database's own full-text engine:
PostgreSQL `caption_tsv` (English stemming, GIN index), SQLite FTS5 `image_fts` (porter
stemmer); both are kept in step with the image rows by the database (migration 0007).

Every word of the query must occur (stemmed), in any order; PostgreSQL also drops English
stop words ("the", "of") from the query, so queries made of content words give the same ids
on both databases."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import TextClause, text
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


def words_condition(dialect: str, words: list[str]) -> TextClause:
    """A WHERE condition on the image table: its title or caption holds every word."""
    if dialect == "postgresql":
        return text("image.caption_tsv @@ plainto_tsquery('english', :fts_query)").bindparams(
            fts_query=" ".join(words))
    return text("image.id IN (SELECT rowid FROM image_fts WHERE image_fts MATCH :fts_query)"
                ).bindparams(fts_query=_fts5_query(words))


def _fts5_query(words: list[str]) -> str:
    """Each word quoted (FTS5 operators in the text are plain words), all required."""
    return " ".join(f'"{word}"' for word in words)


def match_captions(*, session: Session, query: str, limit: int,
                   filters: Mapping[str, str] | None = None) -> list[TextMatch]:
    """Up to `limit` live images whose title or caption holds every word of `query`, best
    match first (ties by id); `filters` are equalities on image columns (topic,
    collection, label)."""
    words = query_words(query)
    conditions = "".join(f" AND image.{column} = :f_{column}" for column in filters or {})
    params: dict[str, Any] = {f"f_{column}": value for column, value in (filters or {}).items()}
    if session.get_bind().dialect.name == "postgresql":
        sql = ("SELECT id, ts_rank_cd(caption_tsv, q) AS rank FROM image, "
               "plainto_tsquery('english', :query) AS q WHERE caption_tsv @@ q "
               f"AND status = 'embedded'{conditions} ORDER BY rank DESC, id LIMIT :limit")
        params |= {"query": " ".join(words), "limit": limit}
    else:
        sql = ("SELECT image.id, -bm25(image_fts) AS rank FROM image_fts "
               "JOIN image ON image.id = image_fts.rowid WHERE image_fts MATCH :query "
               f"AND image.status = 'embedded'{conditions} ORDER BY rank DESC, image.id "
               "LIMIT :limit")
        params |= {"query": _fts5_query(words), "limit": limit}
    rows = session.execute(text(sql), params)
    return [TextMatch(int(image_id), float(rank)) for image_id, rank in rows]
