"""Folder ingest reads a sidecar NAME.txt / NAME.json beside each image (never ingesting it
as an image), else the EXIF ImageDescription."""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image as PILImage

from lookalike.services.catalog import images as image_queries
from lookalike.services.setup import init_catalog, open_runtime
from tests.services.conftest import ingest_into, make_settings


def _photo(path: Path, colour: tuple[int, int, int], description: str | None = None) -> None:
    exif = PILImage.Exif()
    if description:
        exif[0x010E] = description
    PILImage.new("RGB", (40, 32), colour).save(path, "JPEG", exif=exif)


def test_sidecars_and_exif_become_titles_and_captions(tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    _photo(folder / "harbour.jpg", (10, 20, 200), "ignored: the sidecar wins")
    (folder / "harbour.txt").write_text("Boats leaving the harbour at dawn\n")
    _photo(folder / "market.jpg", (200, 20, 10))
    (folder / "market.json").write_text(json.dumps({"title": "Market", "caption": "Fish"}))
    _photo(folder / "street.jpg", (20, 200, 10), "A narrow street")
    _photo(folder / "plain.jpg", (120, 120, 120))
    settings = make_settings(tmp_path / "home")
    init_catalog(settings)
    with open_runtime(settings) as runtime:
        summary = ingest_into(runtime, folder)
        assert (summary.added, summary.failed) == (4, 0), summary.outcomes
        with runtime.read_session() as session:
            rows = image_queries.list_images(session=session)
            words = {Path(r.source_uri).name: (r.title, r.caption) for r in rows}
    assert words == {"harbour.jpg": (None, "Boats leaving the harbour at dawn"),
                     "market.jpg": ("Market", "Fish"),
                     "street.jpg": (None, "A narrow street"),
                     "plain.jpg": (None, None)}
