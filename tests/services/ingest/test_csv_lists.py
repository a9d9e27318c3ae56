"""A CSV list gives the files it names their title, caption and label, over the words found
with the file, whether ingested directly or by a job; a URL list (CSV or one a line, or the
API's URL objects) does the same for URLs; a CSV without its `path`/`url` column is refused
with a message that says what it needs."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image as PILImage

from lookalike.services.api.app import create_app
from lookalike.services.catalog import images as image_queries
from lookalike.services.errors import InvalidRequest
from lookalike.services.ingest.sources import collect_items, read_url_list
from lookalike.services.jobs import runner as jobs
from lookalike.services.setup import init_catalog, open_runtime
from tests.localhttp import serving_directory
from tests.services.conftest import ingest_into, make_settings


def _photos(folder: Path, names: dict[str, tuple[int, int, int]]) -> None:
    folder.mkdir(parents=True)
    for name, colour in names.items():
        PILImage.new("RGB", (40, 32), colour).save(folder / name, "JPEG")


def test_csv_columns_become_words_directly_and_in_a_job(tmp_path: Path) -> None:
    _photos(tmp_path / "pics", {"boat.jpg": (10, 20, 200), "fish.jpg": (200, 20, 10),
                                "plain.jpg": (20, 200, 10), "bus.jpg": (200, 200, 10),
                                "tram.jpg": (10, 200, 200)})
    (tmp_path / "pics" / "boat.txt").write_text("ignored: the CSV wins")
    (tmp_path / "pics" / "plain.txt").write_text("from the sidecar")
    listing = tmp_path / "list.csv"
    listing.write_text('path,title,caption,label\n'
                       'pics/boat.jpg,Boat,"Boats, nets and ""gulls"" at dawn",harbour\n'
                       f'{tmp_path / "pics" / "fish.jpg"},Fish,,\n'
                       'pics/plain.jpg,,,\n'
                       'pics/missing.jpg,Gone,never read,\n')
    (tmp_path / "job.csv").write_text("Path,Caption\npics/bus.jpg,A red bus\n"
                                      "pics/tram.jpg,\n")
    settings = make_settings(tmp_path / "home")
    init_catalog(settings)
    with open_runtime(settings) as runtime:
        summary = ingest_into(runtime, listing, label_from_dir=True)
        assert (summary.added, summary.failed) == (3, 1), summary.outcomes
        assert "missing.jpg" in next(o.source for o in summary.outcomes if o.status == "failed")
        job = jobs.describe(jobs.submit_ingest(runtime, paths=[str(tmp_path / "job.csv")],
                                               wait=True))
        assert (job["state"], job["counts"]["added"]) == ("succeeded", 2), job
        with runtime.read_session() as session:
            rows = {Path(r.source_uri).name: (r.title, r.caption, r.label)
                    for r in image_queries.list_images(session=session)}
    assert rows == {"boat.jpg": ("Boat", 'Boats, nets and "gulls" at dawn', "harbour"),
                    "fish.jpg": ("Fish", None, "pics"),
                    "plain.jpg": (None, "from the sidecar", "pics"),
                    "bus.jpg": (None, "A red bus", None),
                    "tram.jpg": (None, None, None)}


def test_url_lists_give_urls_their_words(tmp_path: Path) -> None:
    _photos(tmp_path / "web", {"kite.jpg": (200, 200, 10), "pier.jpg": (10, 200, 200),
                               "gull.jpg": (90, 90, 90), "sand.jpg": (220, 200, 160)})
    settings = make_settings(tmp_path / "home", fetch_allow=["127.0.0.1"])
    init_catalog(settings)
    with serving_directory(tmp_path / "web") as server, open_runtime(settings) as runtime:
        listing = tmp_path / "urls.csv"
        listing.write_text(f"url,title,caption,label\n{server.root}/kite.jpg,Kite,"
                           f"A red kite,sky\n{server.root}/pier.jpg,,,\n"
                           f"{server.root}/gone.jpg,Gone,never fetched,\n")
        (tmp_path / "urls.txt").write_text(f"# one a line\n{server.root}/gull.jpg\n")
        urls = [*read_url_list(listing), *read_url_list(tmp_path / "urls.txt")]
        job = jobs.describe(jobs.submit_ingest(runtime, urls=urls, wait=True))
        assert (job["counts"]["added"], job["counts"]["failed"]) == (3, 1), job
        with TestClient(create_app(settings)) as client:
            answer = client.post("/v1/jobs", json={"urls": [
                {"url": f"{server.root}/sand.jpg", "caption": "Sand", "label": "beach"}]})
            assert answer.status_code == 202, answer.text
            for _ in range(100):
                shown = client.get(f"/v1/jobs/{answer.json()['id']}").json()
                if shown["state"] not in ("queued", "running"):
                    break
                time.sleep(0.05)
            assert (shown["state"], shown["counts"]["added"]) == ("succeeded", 1), shown
        with runtime.read_session() as session:
            rows = {Path(r.source_uri).name: (r.title, r.caption, r.label)
                    for r in image_queries.list_images(session=session)}
    assert rows == {"kite.jpg": ("Kite", "A red kite", "sky"),
                    "pier.jpg": (None, None, None), "gull.jpg": (None, None, None),
                    "sand.jpg": (None, "Sand", "beach")}


def test_a_csv_without_its_key_column_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("file,caption\na.jpg,words\n")
    with pytest.raises(InvalidRequest, match="needs a header row with a 'path' column"):
        collect_items([bad])
    with pytest.raises(InvalidRequest, match="a 'url' column and may have title, caption"):
        read_url_list(bad)
