"""The page's boxes, keypoints and duplicates in Debian's Chromium, headless, against a real
`lookalike serve`: drag a box on the query and search with it, detect faces on an upload,
an image's regions in its detail view, the matched keypoint pairs of "why it matched", and
the duplicate clusters with their "keep this one, delete the others" action.

The tests run in order on one catalog (the last one deletes images). Screenshots go to
test-artifacts/ (kept out of git).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from lookalike.services.bench.search import free_port, start_server
from lookalike.services.ingest.pipeline import ingest_items
from lookalike.services.ingest.sources import collect_items
from lookalike.services.sample import bundled_photos
from lookalike.services.setup import init_catalog, open_runtime
from tests.services.api.test_browser import ARTIFACTS, browser, open_page, wait_until
from tests.services.conftest import make_settings
from tests.services.index.test_duplicates import add_copies

pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.browser]

__all__ = ["browser"]  # the Chromium fixture, shared with the page's other browser tests


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, int]]]:
    """A server on the bundled photos plus two edited copies of the astronaut (collection
    `copies`) and one of the coffee photo; yields (url, image id by file name)."""
    root = tmp_path_factory.mktemp("regions")
    photos = root / "photos"
    photos.mkdir()
    for photo in bundled_photos():
        photo.image.save(photos / f"{photo.name}.jpg", quality=90)
    settings = make_settings(root / "home")
    init_catalog(settings)
    with open_runtime(settings) as runtime:
        assert ingest_items(runtime, collect_items([photos])).failed == 0
        add_copies(runtime, root / "staged")
    port = free_port()
    process = start_server(settings, port)
    url = f"http://127.0.0.1:{port}"
    items = httpx.get(f"{url}/v1/images", params={"limit": 200}).json()["items"]
    yield url, {Path(item["source_uri"]).name: item["id"] for item in items}
    process.terminate()
    process.wait(timeout=30)


def _wait_for_job(url: str, job_id: int) -> dict:
    deadline = time.monotonic() + 300
    while (job := httpx.get(f"{url}/v1/jobs/{job_id}").json())["state"] in ("queued",
                                                                             "running"):
        assert time.monotonic() < deadline, job
        time.sleep(0.5)
    return job


def _box(request_url: str) -> list[int]:
    query = httpx.URL(request_url).params
    return [int(v) for v in query["box"].split(",")]


def test_drag_a_box_on_the_query_then_detect_faces_and_search_with_one(
        browser, site, tmp_path: Path) -> None:
    url, _ = site
    astronaut = tmp_path / "astronaut-query.jpg"
    next(p.image for p in bundled_photos() if p.name == "astronaut").save(astronaut)
    page, errors = open_page(browser, url, height=1200)
    page.set_input_files("#file", str(astronaut))
    page.locator("#results li").first.wait_for()
    frame = page.locator("#query-frame").bounding_box()
    assert frame and frame["width"] > 50
    left, top, width, height = frame["x"], frame["y"], frame["width"], frame["height"]
    with page.expect_request(lambda r: "/v1/search" in r.url and "box=" in r.url) as sent:
        page.mouse.move(left + 0.25 * width, top + 0.1 * height)
        page.mouse.down()
        page.mouse.move(left + 0.45 * width, top + 0.3 * height, steps=4)
        page.mouse.move(left + 0.6 * width, top + 0.5 * height, steps=4)
        page.mouse.up()
    box = _box(sent.value.url)
    # the preview shows 512 px as a few hundred: the box comes back in the original's pixels
    for got, want in zip(box, (0.25 * 512, 0.1 * 512, 0.6 * 512, 0.5 * 512), strict=True):
        assert abs(got - want) <= 512 / width * 2 + 1, (box, width)
    assert page.input_value("#query-box") == ",".join(map(str, box))
    wait_until(page, "document.getElementById('status').textContent.includes('box ')")
    assert page.locator("#query-frame svg.boxes.query g.box").count() == 1
    assert not page.locator("#status.error").count()
    assert page.locator("#results li").count() == 10
    page.screenshot(path=str(ARTIFACTS / "drag-box.png"), full_page=True)

    page.fill("#detector", "faces")
    page.get_by_role("button", name="Detect", exact=True).click()
    page.locator("#detections li").first.wait_for()
    found = page.locator("#detections li")
    assert found.count() == 1, found.all_inner_texts()  # the astronaut's one face
    assert "face" in found.first.inner_text()
    x0, y0, x1, y1 = (int(v) for v in found.first.get_attribute("data-box").split(","))
    assert 0.25 * 512 < (x0 + x1) / 2 < 0.65 * 512 and (y0 + y1) / 2 < 0.5 * 512
    assert page.locator("#query-frame svg.boxes.found g.box").count() == 1
    page.screenshot(path=str(ARTIFACTS / "detect-faces.png"), full_page=True)
    with page.expect_request(lambda r: "/v1/search" in r.url and "box=" in r.url) as sent:
        page.get_by_role("button", name="Search with box 1 (face)").click()
    assert _box(sent.value.url) == [x0, y0, x1, y1]
    wait_until(page, f"document.getElementById('status').textContent"
                     f".includes('box {x0},{y0},{x1},{y1}')")
    page.get_by_role("button", name="Whole picture").click()
    wait_until(page, "!document.getElementById('status').textContent.includes('box ')")
    assert page.locator("#query-frame svg.boxes.query").count() == 0
    assert errors == []


def test_the_detail_view_lists_an_image_s_regions_and_searches_with_one(browser, site) -> None:
    url, ids = site
    job = httpx.post(f"{url}/v1/jobs", json={"kind": "detect", "detector": "faces"}).json()
    assert _wait_for_job(url, job["id"])["state"] == "succeeded"
    copy = ids["a1.png"]
    regions = httpx.get(f"{url}/v1/images/{copy}/regions").json()["regions"]
    assert regions and regions[0]["label"] == "face"
    page, errors = open_page(browser, url, height=1200)
    page.fill("#query-id", str(copy))
    page.keyboard.press("Enter")
    page.locator(f"#results li[data-image-id='{copy}'] button.thumb").click()
    listed = page.locator("#detail-regions li[data-region-id]")
    listed.first.wait_for()
    assert listed.count() == len(regions)
    assert "face" in listed.first.inner_text() and "(faces)" in listed.first.inner_text()
    assert page.locator("#detail-frame svg.boxes.found g.box").count() == len(regions)
    page.screenshot(path=str(ARTIFACTS / "detail-regions.png"))
    best = regions[0]
    with page.expect_request(lambda r: "/v1/search" in r.url and "box=" in r.url) as sent:
        page.get_by_role("button", name=f"Search with region {best['id']} (face)").click()
    assert _box(sent.value.url) == [round(v) for v in best["box"]]
    assert sent.value.post_data_json == {"image_id": copy}
    assert not page.locator("#detail").is_visible()
    assert errors == []


def test_region_hits_are_boxed_on_their_thumbnails(browser, site) -> None:
    """Runs after the faces detect job above, whose regions are region vectors too."""
    url, ids = site
    original = ids["astronaut.jpg"]
    answer = httpx.post(f"{url}/v1/search", params={"k": 10, "scope": "regions",
                                                    "facets": "true"},
                        json={"image_id": original}).json()
    best = answer["results"][0]
    page, errors = open_page(browser, url, height=1200)
    page.fill("#query-id", str(original))
    page.keyboard.press("Enter")
    page.locator("#results li").first.wait_for()
    with page.expect_request(lambda r: "scope=regions" in r.url):
        page.check("#scope-regions")
    first = page.locator("#results li").first
    first.locator("svg.boxes.region g.box").wait_for()
    assert first.get_attribute("data-region-id") == str(best["region"]["id"])
    drawn = first.locator("svg.boxes.region g.box").get_attribute("data-box")
    assert drawn == ",".join(str(round(v)) for v in best["region"]["box"])
    assert f"region: {best['region']['label']}" in first.inner_text()
    assert page.locator("#results li").count() == len(answer["results"])
    assert "regions" in page.locator("#status").inner_text()
    page.screenshot(path=str(ARTIFACTS / "region-hits.png"), full_page=True)
    assert errors == []


def test_why_it_matched_draws_the_matched_keypoint_pairs(browser, site) -> None:
    url, ids = site
    original, copy = ids["astronaut.jpg"], ids["a1.png"]
    page, errors = open_page(browser, url, height=1400)
    page.fill("#query-id", str(original))
    page.keyboard.press("Enter")
    page.get_by_role("button", name=f"Why image {copy} matched").click()
    page.wait_for_selector("#explain-keypoints:not([hidden])")
    drawn = page.locator("#explain-keypoints svg.keypoints")
    answer = httpx.get(f"{url}/v1/explain", params={"query": original, "result": copy,
                                                     "keypoints": "true"}).json()["keypoints"]
    assert answer["inliers"] >= 20
    assert drawn.locator("line").count() == len(answer["pairs"]) == min(50, answer["inliers"])
    assert drawn.locator("image").count() == 2
    caption = page.locator("#keypoints-caption").inner_text()
    assert caption.startswith(f"{answer['inliers']} keypoints agree")
    page.screenshot(path=str(ARTIFACTS / "keypoints.png"), full_page=True)
    assert errors == []


def test_duplicate_clusters_export_and_keep_one_deleting_the_others(browser, site) -> None:
    url, ids = site
    family = sorted(ids[name] for name in ("astronaut.jpg", "a1.png", "a2.png"))
    kept = ids["a2.png"]
    page, errors = open_page(browser, f"{url}/#duplicates", height=1400)
    page.on("dialog", lambda dialog: dialog.accept())
    page.fill("#duplicates-threshold", "0.9")
    page.get_by_role("button", name="Find duplicates").click()
    page.locator("#clusters li.cluster").first.wait_for()
    clusters = page.locator("#clusters li.cluster")
    members = [sorted(int(v) for v in clusters.nth(i).locator("li.card").evaluate_all(
        "cards => cards.map((card) => card.dataset.imageId)")) for i in range(clusters.count())]
    assert family in members
    number = members.index(family) + 1
    assert "clusters" in page.locator("#duplicates-summary").inner_text()

    with page.expect_download() as download:
        page.get_by_role("button", name="Export CSV").click()
    text = Path(download.value.path()).read_text(encoding="utf-8")
    assert text.splitlines()[0] == "cluster,image_id,keep,source,best,worst"
    assert len(text.splitlines()) == 1 + sum(len(m) for m in members)
    page.screenshot(path=str(ARTIFACTS / "duplicates.png"), full_page=True)

    page.get_by_role("button", name=f"Keep image {kept}, delete the other 2 of cluster "
                                    f"{number}").click()
    page.wait_for_selector(f"#clusters li[data-cluster='{number}'][data-resolved]")
    resolved = page.locator(f"#clusters li[data-cluster='{number}']")
    assert f"kept #{kept}" in resolved.inner_text()
    assert resolved.locator("li.card.gone").count() == 2
    assert f"({len(members) - 1} not resolved)" in page.locator("#duplicates-summary").inner_text()
    for image_id in family:
        status = httpx.get(f"{url}/v1/images/{image_id}").status_code
        assert status == (200 if image_id == kept else 404), image_id
    page.screenshot(path=str(ARTIFACTS / "duplicates-kept.png"), full_page=True)
    page.reload()
    page.wait_for_selector(f"#clusters li[data-cluster='{number}'][data-resolved]")
    assert errors == []
