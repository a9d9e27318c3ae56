"""The catalog refuses text holding a NUL (0x00) character or an unpaired surrogate on SQLite as
on PostgreSQL, before the statement runs, so the CLI and the workers get the same clear error
as the API; the session goes on after a rollback."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session

from lookalike.services.catalog.images import add_image, count_images, list_images
from lookalike.services.errors import InvalidRequest
from tests.services.catalog.builders import image_data


@pytest.mark.parametrize("field", ["label", "collection", "title"])
def test_a_row_with_a_nul_in_its_text_is_refused_and_nothing_is_written(
        session: Session, field: str) -> None:
    add_image(session=session, data=image_data("kept"))
    session.commit()
    with pytest.raises(InvalidRequest, match=r"NUL \(0x00\) character or an unpaired"):
        add_image(session=session, data=image_data("nul", **{field: "cups\x00"}))
        session.flush()
    session.rollback()
    assert count_images(session=session) == 1


@pytest.mark.parametrize("text", ["a\x00b", "a\ud800b"])
def test_a_lookup_with_unstorable_text_is_refused(session: Session, text: str) -> None:
    with pytest.raises(InvalidRequest, match=r"NUL \(0x00\) character or an unpaired"):
        list_images(session=session, collection=text)
