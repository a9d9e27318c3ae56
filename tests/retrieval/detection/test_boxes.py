"""A person's box as text: what `parse_box` reads, and the reason it gives for what it refuses."""

from __future__ import annotations

import pytest

from lookalike.retrieval.detection.boxes import Box, parse_box
from lookalike.retrieval.errors import InvalidBox


@pytest.mark.parametrize(("text", "box"), [
    ("0,0,10,20", Box(0.0, 0.0, 10.0, 20.0)),
    ("1.5, 2 ,30.25,40", Box(1.5, 2.0, 30.25, 40.0)),
    ("-0,+1,.5e2,64", Box(0.0, 1.0, 50.0, 64.0)),
])
def test_plain_decimal_numbers_are_read_as_pixels(text: str, box: Box) -> None:
    assert parse_box(text, width=64, height=64) == box


@pytest.mark.parametrize(("text", "reason"), [
    ("\u0661,0,10,10", "not numeric"),  # an Arabic-Indic one: float() would read 1
    ("1_0,0,20,20", "not numeric"),  # float() would read 10
    ("0x10,0,20,20", "not numeric"),
    ("0,0,,10", "not numeric"),
    ("0,0,10", "four numbers"),
    ("nan,0,10,10", "not a finite number"),
    ("0,0,-Infinity,10", "not a finite number"),
    ("0,0,1e309,10", "not a finite number"),
    ("5,0,5,10", "empty or inverted"),
    ("0,0,65,10", "outside the image"),
])
def test_anything_else_is_refused_saying_why(text: str, reason: str) -> None:
    with pytest.raises(InvalidBox, match=reason):
        parse_box(text, width=64, height=64)
