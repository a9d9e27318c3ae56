"""Folder ingest reads a sidecar NAME.txt / NAME.json beside each image (never ingesting it
as an image), else the XMP dc:description/dc:title, else the EXIF ImageDescription."""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image as PILImage

from lookalike.services.catalog import images as image_queries
from lookalike.services.setup import init_catalog, open_runtime
from tests.services.conftest import ingest_into, make_settings


def _xmp(title: str, description: str) -> bytes:
    """An XMP packet as photo tools write it: dc:title and dc:description as rdf:Alt."""
    def alt(text: str) -> str:
        return (f'<rdf:Alt><rdf:li xml:lang="de">nicht das</rdf:li>'
                f'<rdf:li xml:lang="x-default">{text}</rdf:li></rdf:Alt>')
    return (
        '<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?>'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
        'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about="" xmlns:xmp="http://ns.adobe.com/xap/1.0/">'
        '<xmp:Rating>3</xmp:Rating></rdf:Description>'
        '<rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/">'
        f'<dc:title>{alt(title)}</dc:title><dc:description>{alt(description)}</dc:description>'
        '</rdf:Description></rdf:RDF></x:xmpmeta><?xpacket end="w"?>').encode()


def _photo(path: Path, colour: tuple[int, int, int], description: str | None = None,
           xmp: bytes | None = None) -> None:
    exif = PILImage.Exif()
    if description:
        exif[0x010E] = description
    extra = {"xmp": xmp} if xmp else {}
    PILImage.new("RGB", (40, 32), colour).save(path, "JPEG", exif=exif, **extra)


def test_sidecars_and_exif_become_titles_and_captions(tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    _photo(folder / "harbour.jpg", (10, 20, 200), "ignored: the sidecar wins")
    (folder / "harbour.txt").write_text("Boats leaving the harbour at dawn\n")
    _photo(folder / "market.jpg", (200, 20, 10))
    (folder / "market.json").write_text(json.dumps({"title": "Market", "caption": "Fish"}))
    _photo(folder / "street.jpg", (20, 200, 10), "A narrow street")
    _photo(folder / "plain.jpg", (120, 120, 120))
    _photo(folder / "kite.jpg", (200, 200, 10), "ignored: XMP wins over EXIF",
           xmp=_xmp("Kite", "A red kite over the hill"))
    _photo(folder / "pier.jpg", (10, 200, 200), xmp=_xmp("Pier", "ignored: the sidecar wins"))
    (folder / "pier.txt").write_text("Waves under the pier")
    settings = make_settings(tmp_path / "home")
    init_catalog(settings)
    with open_runtime(settings) as runtime:
        summary = ingest_into(runtime, folder)
        assert (summary.added, summary.failed) == (6, 0), summary.outcomes
        with runtime.read_session() as session:
            rows = image_queries.list_images(session=session)
            words = {Path(r.source_uri).name: (r.title, r.caption) for r in rows}
    assert words == {"harbour.jpg": (None, "Boats leaving the harbour at dawn"),
                     "market.jpg": ("Market", "Fish"),
                     "street.jpg": (None, "A narrow street"),
                     "plain.jpg": (None, None),
                     "kite.jpg": ("Kite", "A red kite over the hill"),
                     "pier.jpg": (None, "Waves under the pier")}
