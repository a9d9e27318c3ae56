"""Boxes in an image's own pixels: parsing a person's `x0,y0,x1,y1`, cropping, margins.

No detector here (retrieval/detection/finding.py runs one), so region search imports no
detection network."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from PIL import Image

from lookalike.retrieval.errors import InvalidBox

# A plain decimal number in ASCII: Python's float() also reads '1_0', Arabic-Indic digits,
# 'nan' and 'infinity', none of which a person means by a pixel coordinate.
NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


@dataclass(frozen=True)
class Box:
    """A box x0, y0, x1, y1 in original pixels (x1, y1 exclusive), its label and score."""

    x0: float
    y0: float
    x1: float
    y1: float
    label: str | None = None
    score: float | None = None


def parse_box(text: str, *, width: int, height: int) -> Box:
    """`x0,y0,x1,y1` in the image's pixels; InvalidBox says what is wrong with anything else."""
    parts = [part.strip() for part in text.split(",")]
    if len(parts) != 4:
        raise InvalidBox(f"box {text!r} must be four numbers x0,y0,x1,y1; got {len(parts)} "
                         "values")
    x0, y0, x1, y1 = (_coordinate(part, text) for part in parts)
    if x1 <= x0 or y1 <= y0:
        raise InvalidBox(f"box {text!r} is empty or inverted: it needs x0 < x1 and y0 < y1")
    if x0 < 0 or y0 < 0 or x1 > width or y1 > height:
        raise InvalidBox(f"box {text!r} reaches outside the image, which is {width}x{height} "
                         f"pixels: keep 0 <= x0 < x1 <= {width} and 0 <= y0 < y1 <= {height}")
    return Box(x0, y0, x1, y1)


def _coordinate(part: str, text: str) -> float:
    """One coordinate of the box `text`: a finite plain decimal number, else InvalidBox."""
    if NUMBER.fullmatch(part) is None:
        if part.lower().lstrip("+-") in ("nan", "inf", "infinity"):
            raise InvalidBox(f"box {text!r} has a value that is not a finite number")
        raise InvalidBox(f"box {text!r} is not numeric: give four numbers x0,y0,x1,y1 in "
                         "pixels")
    value = float(part)
    if not math.isfinite(value):
        raise InvalidBox(f"box {text!r} has a value that is not a finite number")
    return value


def crop(image: Image.Image, box: Box) -> Image.Image:
    """The part of `image` inside `box` (rounded outwards to whole pixels)."""
    return image.crop((math.floor(box.x0), math.floor(box.y0), math.ceil(box.x1),
                       math.ceil(box.y1)))


def with_margin(box: Box, *, width: int, height: int, margin: float) -> Box:
    """The box grown by `margin` of its width and height on each side (context around an
    object helps its descriptor), clipped to the image; label and score kept."""
    dx, dy = (box.x1 - box.x0) * margin, (box.y1 - box.y0) * margin
    return Box(max(0.0, box.x0 - dx), max(0.0, box.y0 - dy), min(float(width), box.x1 + dx),
               min(float(height), box.y1 + dy), box.label, box.score)
