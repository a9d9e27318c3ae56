"""The words that come with an image file: a sidecar `NAME.txt` (the caption) or `NAME.json`
({"title": ..., "caption": ...}) beside it, else the XMP dc:description (and dc:title) inside
it, else its EXIF ImageDescription."""

from __future__ import annotations

import io
import json
import logging
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from lookalike.services.catalog.storable import storable

log = logging.getLogger(__name__)

SIDECAR_SUFFIXES = (".json", ".txt")
EXIF_IMAGE_DESCRIPTION = 0x010E
TITLE_MAX = 300
CAPTION_MAX = 20_000


@dataclass(frozen=True)
class Words:
    """An image's title and caption (either may be missing) and where they came from."""

    title: str | None = None
    caption: str | None = None
    origin: str | None = None

    @property
    def empty(self) -> bool:
        return self.title is None and self.caption is None


NO_WORDS = Words()


def clean_text(value: object, limit: int) -> str | None:
    """Stripped text without what the catalog cannot store (EXIF pads its strings with NULs),
    cut to `limit` characters; None for anything empty or not a string."""
    if not isinstance(value, str):
        return None
    text = storable(value).strip()
    return text[:limit] or None


def sidecars(image: Path) -> list[Path]:
    """The sidecar files that may describe `image`, in the order they are tried."""
    return [image.with_suffix(suffix) for suffix in SIDECAR_SUFFIXES]


def is_sidecar(path: Path) -> bool:
    """True for a .txt/.json file beside a file of the same stem: it describes that file."""
    if path.suffix.lower() not in SIDECAR_SUFFIXES:
        return False
    return any(other != path and other.is_file() and other.suffix.lower()
               not in SIDECAR_SUFFIXES for other in path.parent.glob(f"{path.stem}.*"))


def sidecar_words(image: Path) -> Words:
    """The title and caption from the first sidecar of `image` that exists. A sidecar that
    is not valid UTF-8 text or JSON is reported in the log and not used."""
    for path in sidecars(image):
        if not path.is_file():
            continue
        try:
            body = path.read_text(encoding="utf-8")
            if path.suffix == ".txt":
                return Words(caption=clean_text(body, CAPTION_MAX), origin=path.name)
            data = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError, OSError) as exc:
            log.warning("sidecar %s not used: %s", path, exc)
            continue
        if isinstance(data, dict):
            return Words(title=clean_text(data.get("title"), TITLE_MAX),
                         caption=clean_text(data.get("caption") or data.get("description"),
                                        CAPTION_MAX), origin=path.name)
        log.warning("sidecar %s not used: it holds no JSON object", path)
    return Words()


def _xmp_text(value: object) -> str | None:
    """The text of an XMP property as Pillow's getxmp() gives it: a plain string, or an
    rdf:Alt of language alternatives (the x-default one, else the first)."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        if "text" in value:
            return _xmp_text(value["text"])
        inner = value.get("Alt") or value.get("Seq") or value.get("Bag")
        if isinstance(inner, dict):
            items = inner.get("li")
            options = items if isinstance(items, list) else [items]
            default = [o for o in options if isinstance(o, dict) and o.get("lang") == "x-default"]
            return _xmp_text((default or options)[0]) if options else None
    return None


def _xmp_words(xmp: dict) -> Words:
    """dc:title and dc:description from the rdf:Description elements of an XMP packet."""
    meta = xmp.get("xmpmeta")
    rdf = meta.get("RDF") if isinstance(meta, dict) else None
    blocks = rdf.get("Description") if isinstance(rdf, dict) else None
    title = caption = None
    for block in blocks if isinstance(blocks, list) else [blocks]:
        if isinstance(block, dict):
            title = title or clean_text(_xmp_text(block.get("title")), TITLE_MAX)
            caption = caption or clean_text(_xmp_text(block.get("description")), CAPTION_MAX)
    if title is None and caption is None:
        return Words()
    return Words(title=title, caption=caption, origin="xmp")


def embedded_words(data: bytes) -> Words:
    """The words inside image bytes: XMP dc:description and dc:title when present, else the
    EXIF ImageDescription as the caption. An XMP packet that is not well-formed XML is
    reported in the log and the EXIF description used."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            exif = image.getexif().get(EXIF_IMAGE_DESCRIPTION)
            try:
                xmp = image.getxmp()
            except (SyntaxError, ValueError) as exc:  # ParseError, defusedxml's refusals
                log.warning("XMP packet not used: %s", exc)
                xmp = {}
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        return Words()
    found = _xmp_words(xmp)
    if not found.empty:
        return found
    if isinstance(exif, bytes):
        exif = exif.decode("utf-8", errors="replace")
    caption = clean_text(exif, CAPTION_MAX)
    return Words(caption=caption, origin="exif") if caption else Words()
