"""The text an image row carries besides its bytes (collection, label), checked against the
catalog's column sizes and for what it cannot store (a NUL) before any file is stored: an
over-long name is the caller's error (a 422, or one failed item of a batch), never a failed
transaction that leaves its file."""

from __future__ import annotations

from sqlalchemy import String

from lookalike.services.catalog.models import Image
from lookalike.services.catalog.storable import text_problem
from lookalike.services.errors import InvalidRequest
from lookalike.services.ingest.captions import CAPTION_MAX, NO_WORDS, TITLE_MAX, Words


def column_length(name: str) -> int:
    """How many characters the image table's text column `name` holds."""
    column_type = Image.__table__.columns[name].type
    assert isinstance(column_type, String) and column_type.length is not None, name
    return column_type.length


COLLECTION_MAX = column_length("collection")
LABEL_MAX = column_length("label")


def metadata_problem(*, collection: str | None, label: str | None) -> str | None:
    """Why this collection or label cannot be stored with an image, or None when both fit."""
    for what, value, limit in (("collection", collection, COLLECTION_MAX),
                               ("label", label, LABEL_MAX)):
        if value is not None and len(value) > limit:
            return (f"{what} '{value[:40]}…' is {len(value)} characters; the catalog holds "
                    f"at most {limit}")
        if problem := text_problem(what, value):
            return problem
    return None


def words_problem(words: Words) -> str | None:
    """Why this title or caption cannot be stored, or None when both fit."""
    for what, value, limit in (("title", words.title, TITLE_MAX),
                               ("caption", words.caption, CAPTION_MAX)):
        if value is not None and len(value) > limit:
            return (f"{what} is {len(value)} characters; the catalog holds at most {limit}")
        if problem := text_problem(what, value):
            return problem
    return None


def check_metadata(*, collection: str | None, label: str | None,
                   words: Words = NO_WORDS) -> None:
    """Raise InvalidRequest (a 422 over HTTP) when the collection, label, title or caption
    is too long or holds what the catalog cannot store."""
    problem = metadata_problem(collection=collection, label=label) or words_problem(words)
    if problem is not None:
        raise InvalidRequest(problem)
