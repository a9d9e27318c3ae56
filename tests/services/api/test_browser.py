"""The web page in Debian's Chromium, headless, against a real `lookalike serve` and catalog.

Screenshots of each step go to test-artifacts/ (kept out of git).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import ImageOps
from playwright.sync_api import sync_playwright

from lookalike.services.auth.keys import create_api_key
from lookalike.services.bench.search import free_port, start_server
from lookalike.services.evaluation.run import evaluate
from lookalike.services.ingest.pipeline import ingest_items
from lookalike.services.ingest.sources import collect_items
from lookalike.services.sample import build_sample, bundled_photos
from lookalike.services.setup import init_catalog, open_runtime
from lookalike.services.spaces.create import SpaceDefinition, create_space
from tests.services.conftest import make_settings
from tests.services.text.corpus import write_corpus
from tests.services.text.test_text_jobs import SMALL

pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.browser]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
LABELS = {"chelsea": "cats", "rocket": "space", "moon": "space", "hubble_deep_field": "space"}
TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A server on a catalog of the bundled photos, labelled by folder; yields (url, root)."""
    root = tmp_path_factory.mktemp("site")
    for photo in bundled_photos():
        folder = root / "photos" / LABELS.get(photo.name, "misc")
        folder.mkdir(parents=True, exist_ok=True)
        photo.image.save(folder / f"{photo.name}.jpg", quality=90)
    extra = root / "mirrored" / "flipped"
    extra.mkdir(parents=True)
    for photo in bundled_photos()[:6]:
        ImageOps.mirror(photo.image).save(extra / f"{photo.name}-mirrored.jpg", quality=90)
    settings = make_settings(root / "home")
    init_catalog(settings)
    runtime = open_runtime(settings)
    summary = ingest_items(runtime, collect_items([root / "photos"], collection="demo",
                                                  label_from_dir=True))
    assert summary.failed == 0
    runtime.close()
    port = free_port()
    process = start_server(settings, port, extra_env={"LOOKALIKE_INGEST_ROOTS": str(root)})
    yield f"http://127.0.0.1:{port}", root
    process.terminate()
    process.wait(timeout=30)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make system-deps` (apt-get install chromium)",
                    pytrace=False)
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as driver:
        chromium = driver.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def open_page(browser, url: str, *, width: int = 1280, height: int = 900):
    page = browser.new_page(viewport={"width": width, "height": height})
    page.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(url)
    page.wait_for_selector("body[data-ready='true']")
    return page, errors


def wait_until(page, expression: str, arg: object = None) -> None:
    """Poll `expression` (a JS expression, or a function of `arg`) until it is truthy. Unlike
    Playwright's wait_for_function, which evaluates its predicate with eval inside the page,
    this works under the page's strict Content-Security-Policy (no 'unsafe-eval')."""
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while not page.evaluate(expression, arg):
        if time.monotonic() > deadline:
            raise AssertionError(f"still false after {TIMEOUT_MS / 1000:.0f} s: {expression}")
        time.sleep(0.1)


def image_id_of(url: str, source: Path) -> int:
    listing = httpx.get(f"{url}/v1/images", params={"limit": 200}).json()["items"]
    return next(item["id"] for item in listing if item["source_uri"] == str(source.resolve()))


def test_upload_shows_the_photo_first_and_explains_the_match(browser, site) -> None:
    url, root = site
    query = root / "photos" / "misc" / "motorcycle_left.jpg"
    twin = image_id_of(url, root / "photos" / "misc" / "motorcycle_right.jpg")
    page, errors = open_page(browser, url, height=1150)
    page.set_input_files("#file", str(query))
    first = page.locator("#results li").first
    first.wait_for()
    assert first.get_attribute("data-image-id") == str(image_id_of(url, query))
    assert page.locator("#results li").count() == 10
    assert "misc" in first.inner_text()
    second = page.locator("#results li").nth(1)
    assert second.get_attribute("data-image-id") == str(twin)
    page.screenshot(path=str(ARTIFACTS / "search-results.png"), full_page=True)

    second.get_by_role("button", name="Why image").click()
    page.wait_for_selector("#explain:not([hidden])")
    wait_until(page, "document.getElementById('explain-result').naturalWidth > 0")
    assert page.locator("#explain-summary").inner_text().startswith("Cosine similarity")
    assert "demo" in page.locator("#detail-meta").inner_text()
    page.screenshot(path=str(ARTIFACTS / "explain.png"))
    page.keyboard.press("Escape")
    assert not page.locator("#detail").is_visible()
    assert errors == []


def test_keyboard_search_by_id_then_browse_by_label(browser, site) -> None:
    url, root = site
    rocket = image_id_of(url, root / "photos" / "space" / "rocket.jpg")
    page, errors = open_page(browser, url)
    page.focus("#query-id")
    page.keyboard.type(str(rocket))
    page.keyboard.press("Enter")
    page.wait_for_selector(f"#results li[data-image-id='{rocket}']")
    assert page.locator("#results li").first.get_attribute("data-image-id") == str(rocket)

    page.click("a[data-tab='browse']")
    page.fill("#browse-label", "space")
    page.keyboard.press("Enter")
    wait_until(page, "document.querySelectorAll('#browse-grid li').length === 3")
    assert page.locator("#browse-next").is_disabled()
    page.screenshot(path=str(ARTIFACTS / "browse.png"), full_page=True)

    page.on("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name=f"Delete image {rocket}").click()
    wait_until(page, "document.querySelectorAll('#browse-grid li').length === 2")
    assert httpx.get(f"{url}/v1/images/{rocket}").status_code == 404
    assert errors == []


def test_phone_sized_screen_has_no_sideways_scroll(browser, site) -> None:
    url, root = site
    page, errors = open_page(browser, url, width=390, height=844)
    page.set_input_files("#file", str(root / "photos" / "space" / "moon.jpg"))
    page.locator("#results li").first.wait_for()
    assert page.evaluate("document.scrollingElement.scrollWidth <= window.innerWidth")
    page.screenshot(path=str(ARTIFACTS / "phone.png"), full_page=True)
    page.click("a[data-tab='spaces']")
    page.wait_for_selector("#spaces-table tbody tr")
    assert "default" in page.locator("#spaces-table").inner_text()
    assert errors == []


def test_ingest_job_reaches_100_percent(browser, site) -> None:
    url, root = site
    page, errors = open_page(browser, f"{url}/#jobs")
    page.fill("#job-paths", str(root / "mirrored"))
    page.fill("#job-collection", "mirrored")
    page.check("#job-label-from-dir")
    page.click("#job-form button[type='submit']")
    done = page.locator("#jobs-table tr[data-state='succeeded']").first
    done.wait_for(timeout=120_000)
    assert "100% (6/6)" in done.inner_text()
    assert "6 / 0 / 0" in done.inner_text()
    page.screenshot(path=str(ARTIFACTS / "jobs.png"), full_page=True)
    listed = httpx.get(f"{url}/v1/images", params={"collection": "mirrored"}).json()["items"]
    assert {item["label"] for item in listed} == {"flipped"} and len(listed) == 6
    assert errors == []


def test_spaces_view_shows_the_last_evaluation_and_why_a_space_cannot_be_default(
        browser, site) -> None:
    url, root = site
    runtime = open_runtime(make_settings(root / "home"))
    result = evaluate(runtime, space_name=None, benchmark="labels")
    create_space(runtime, name="unfilled", definition=SpaceDefinition(pooling="gem"))
    runtime.close()
    page, errors = open_page(browser, f"{url}/#spaces")
    default = page.locator("#spaces-table tr[data-space='mobilenet_v2-gap']")
    default.wait_for()
    assert f"mAP {result.map:.3f}" in default.locator("td.evaluation").inner_text()
    assert "labels" in default.inner_text()
    page.get_by_role("button", name="Make unfilled the default space").click()
    page.wait_for_selector("#status.error")
    assert "holds 0 vectors" in page.locator("#status").inner_text()
    assert "default" in page.locator("#spaces-table tr[data-space='mobilenet_v2-gap']").inner_text()
    page.screenshot(path=str(ARTIFACTS / "spaces.png"), full_page=True)
    assert errors == []


def test_spaces_view_shows_a_space_s_first_layer_filters(browser, site) -> None:
    url, _ = site
    page, errors = open_page(browser, f"{url}/#spaces")
    page.get_by_role("button", name="Show the first-layer filters of mobilenet_v2-gap").click()
    image = page.locator("#space-filters img.filters")
    image.wait_for()
    wait_until(page, "() => { const img = document.querySelector('#space-filters img'); "
                     "return img && img.complete && img.naturalWidth > 0; }")
    assert image.evaluate("img => img.naturalWidth") == 6 * 34 + 2  # 32 filters, 6x6 tiles
    response = httpx.get(f"{url}/v1/spaces/no-such-space/visualize/filters.png")
    assert response.status_code == 404 and "no-such-space" in response.text
    page.screenshot(path=str(ARTIFACTS / "space-filters.png"), full_page=True)
    assert errors == []


def test_spaces_view_runs_a_top_patches_job_and_shows_an_upload_s_saliency(browser,
                                                                          site) -> None:
    url, root = site
    query = root / "photos" / "misc" / "motorcycle_left.jpg"
    twin = image_id_of(url, root / "photos" / "misc" / "motorcycle_right.jpg")
    page, errors = open_page(browser, f"{url}/#spaces", height=1400)
    wait_until(page, "document.getElementById('visual-space').value === 'mobilenet_v2-gap'")
    page.fill("#top-layer", "4")
    page.fill("#top-channel", "7")
    page.get_by_role("button", name="Find top patches").click()
    sheet = page.locator("#space-top-patches img.top-patches")
    sheet.wait_for()
    wait_until(page, "(img) => img.complete && img.naturalWidth > 0", arg=sheet.element_handle())
    assert sheet.evaluate("img => img.naturalWidth") == 3 * 98 + 2  # 3x3 tiles of 96 px
    job = httpx.get(f"{url}/v1/jobs/{sheet.get_attribute('data-job-id')}").json()
    assert (job["kind"], job["state"]) == ("top-patches", "succeeded")
    best = job["top_patches"]["top"][0]["image_id"]
    assert f"best first: #{best} (" in page.locator("#space-top-patches").inner_text()

    page.set_input_files("#saliency-file", str(query))
    page.fill("#saliency-match", str(twin))
    page.get_by_role("button", name="Show saliency").click()
    overlay = page.locator("#space-saliency img.saliency")
    overlay.wait_for()
    wait_until(page, "(img) => img.complete && img.naturalWidth > 0",
               arg=overlay.element_handle())
    assert overlay.evaluate("img => img.naturalWidth") == 224
    assert f"similarity to image {twin}" in page.locator("#space-saliency").inner_text()
    page.screenshot(path=str(ARTIFACTS / "space-look-inside.png"), full_page=True)
    assert errors == []
    refused = httpx.post(f"{url}/v1/jobs", json={"kind": "top-patches", "layer": 4,
                                                 "channel": 9999})
    assert refused.status_code == 422 and "channel 9999" in refused.text
    unknown = httpx.post(f"{url}/v1/spaces/no-such-space/visualize/saliency",
                         files={"file": (query.name, query.read_bytes())})
    assert unknown.status_code == 404 and "no-such-space" in unknown.text
    assert httpx.get(f"{url}/v1/jobs/{job['id'] + 99}/top-patches.png").status_code == 404


def test_a_finetune_job_shows_its_figures_and_curves(browser, site) -> None:
    url, root = site
    build_sample(root / "fm", fashion_per_class=4)
    for path in sorted((root / "fm" / "fashion-mnist").rglob("*.png")):
        answer = httpx.post(f"{url}/v1/images", files={"file": (path.name, path.read_bytes())},
                            data={"collection": "fm", "label": path.parent.name})
        assert answer.status_code in (200, 201), answer.text
    job = httpx.post(f"{url}/v1/jobs", json={"kind": "finetune", "space": "fm-head",
                                             "method": "head", "collection": "fm",
                                             "loss": "softmax", "epochs": 2}).json()
    page, errors = open_page(browser, f"{url}/#jobs")
    row = page.locator(f"#jobs-table tr[data-job-id='{job['id']}'][data-state='succeeded']")
    row.wait_for(timeout=120_000)
    figures = page.locator(f"tr[data-training-of='{job['id']}']")
    assert "after epoch 2" in figures.inner_text()
    assert "created space fm-head" in figures.inner_text()
    curves = figures.locator("img.curves")
    curves.wait_for()
    wait_until(page, "(img) => img.complete && img.naturalWidth > 0",
               arg=curves.element_handle())
    page.screenshot(path=str(ARTIFACTS / "training.png"), full_page=True)
    assert errors == []


@pytest.fixture(scope="module")
def keyed_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    """A server that requires keys, on a catalog of the bundled photos; (url, secrets)."""
    root = tmp_path_factory.mktemp("keyed")
    settings = make_settings(root / "home")
    init_catalog(settings)
    with open_runtime(settings) as runtime:
        photos = root / "photos"
        photos.mkdir()
        for photo in bundled_photos()[:8]:
            photo.image.save(photos / f"{photo.name}.jpg", quality=90)
        ingest_items(runtime, collect_items([photos]))
        secrets = {role: create_api_key(runtime, name=f"{role}-key", scopes=role)[1]
                   for role in ("search", "admin")}
    port = free_port()
    process = start_server(settings, port)
    yield f"http://127.0.0.1:{port}", secrets
    process.terminate()
    process.wait(timeout=30)


def _sign_in(browser, url: str, secret: str):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(TIMEOUT_MS)
    sent: list[tuple[str, str | None]] = []
    page.on("request", lambda request: sent.append((request.url,
                                                    request.headers.get("authorization"))))
    page.goto(url)
    page.wait_for_selector("#key-dialog[open]")
    page.fill("#key-input", "lk_not-a-key")
    page.click("#key-form button[type='submit']")
    wait_until(page, "document.getElementById('key-error').textContent.includes('refused')")
    page.fill("#key-input", secret)
    page.click("#key-form button[type='submit']")
    page.wait_for_selector("body[data-ready='true']")
    return page, sent


def test_the_page_asks_for_a_key_and_offers_only_what_it_allows(browser, keyed_site) -> None:
    url, secrets = keyed_site
    page, sent = _sign_in(browser, url, secrets["search"])
    assert page.get_attribute("body", "data-scopes") == "search"
    assert not page.locator("a[data-tab='jobs']").is_visible()
    page.fill("#query-id", "1")
    page.keyboard.press("Enter")
    page.wait_for_selector("#results li[data-image-id='1']")
    wait_until(page, "[...document.querySelectorAll('#results img')]"
                           ".every((img) => img.complete && img.naturalWidth > 0)")
    assert not page.locator("#results .danger").first.is_visible()
    assert page.evaluate("sessionStorage.getItem('lookalike.key')") == secrets["search"]
    assert page.evaluate("localStorage.length") == 0
    keyed = [target for target, header in sent if header]
    assert keyed and all(target.startswith(url + "/") for target in keyed)
    page.screenshot(path=str(ARTIFACTS / "keyed-search.png"), full_page=True)

    admin, _ = _sign_in(browser, url, secrets["admin"])
    admin.click("a[data-tab='browse']")
    admin.wait_for_selector("#browse-grid li")
    assert admin.locator("#browse-grid .danger").first.is_visible()
    assert admin.locator("a[data-tab='jobs']").is_visible()


def test_words_beside_the_image_and_topic_chips(browser, site) -> None:
    url, root = site
    corpus = write_corpus(root / "corpus")
    job = httpx.post(f"{url}/v1/jobs", json={"kind": "text-train", "name": "web",
                                             "source": str(corpus), **SMALL}).json()
    deadline = time.monotonic() + 120
    while httpx.get(f"{url}/v1/jobs/{job['id']}").json()["state"] != "succeeded":
        assert time.monotonic() < deadline, httpx.get(f"{url}/v1/jobs/{job['id']}").text
        time.sleep(0.5)
    captions = {"cats/chelsea.jpg": "a cat and a dog near a fox",
                "misc/motorcycle_left.jpg": "a car and a bus on the road",
                "misc/motorcycle_right.jpg": "a truck and a van with a wheel"}
    ids = {}
    for name, caption in captions.items():
        ids[name] = image_id_of(url, root / "photos" / name)
        edited = httpx.patch(f"{url}/v1/images/{ids[name]}", json={"caption": caption})
        assert edited.status_code == 200, edited.text
    left = ids["misc/motorcycle_left.jpg"]
    page, errors = open_page(browser, url)
    page.fill("#query-id", str(left))
    page.keyboard.press("Enter")
    page.wait_for_selector("#topic-chips button[data-topic='vehicles']")
    assert page.locator("#topic-chips").inner_text().split("\n") == ["vehicles (2)",
                                                                      "animals (1)"]
    page.click("#topic-chips button[data-topic='vehicles']")
    wait_until(page, "document.querySelectorAll('#results li').length === 2")
    assert page.locator("#results li").first.get_attribute("data-image-id") == str(left)
    assert "a car and a bus on the road" in page.locator("#results li").first.inner_text()
    assert page.get_attribute("#topic-chips button[data-topic='vehicles']",
                              "aria-pressed") == "true"
    page.screenshot(path=str(ARTIFACTS / "topic-chips.png"), full_page=True)
    page.click("#topic-chips button[data-topic='vehicles']")  # off again
    page.fill("#query-id", "")
    page.fill("#query-text", "cat fox")
    page.keyboard.press("Enter")
    wait_until(page, "document.querySelectorAll('#results li').length === 1")
    assert "text search" in page.locator("#status").inner_text()
    chelsea = page.locator("#results li").first
    assert chelsea.get_attribute("data-image-id") == str(ids["cats/chelsea.jpg"])
    assert "topic: animals" in chelsea.inner_text()
    assert errors == []
