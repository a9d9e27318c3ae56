"""The web page plays a video result from its second: in Debian's Chromium, headless, against
a real `lookalike serve` holding one clip, a still from the clip finds the clip's frame, the
card shows the frame's time, and a click plays the clip with `currentTime` near that time;
on an open server (the file's URL) and on one that needs keys (the file fetched with the key,
played from a blob)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from lookalike.retrieval.video.decode import VideoLimits, decode_frames
from lookalike.services.auth.keys import create_api_key
from lookalike.services.bench.search import free_port, start_server
from lookalike.services.ingest.videos import ingest_video_bytes
from lookalike.services.setup import init_catalog, open_runtime
from tests.services.api.test_browser import (
    ARTIFACTS,
    _sign_in,
    browser,
    open_page,
    wait_until,
)
from tests.services.conftest import make_settings
from tests.videofactory import Shot, write_clip

pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.browser]
__all__ = ["browser"]  # the Chromium fixture, shared with the other browser tests

SHOTS = [Shot(50, (200, 40, 40)), Shot(75, (40, 200, 40)), Shot(50, (40, 40, 200))]
SIZE = (192, 128)
LIMITS = VideoLimits(max_bytes=10**8, max_seconds=600, max_pixels=10**7, max_frames=10**5)
STILL_AT = 3.5  # seconds: inside the green shot (2 s to 5 s)


@pytest.fixture(scope="module", params=["open", "keyed"])
def clip_site(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
              ) -> Iterator[tuple[str, Path, str | None]]:
    """A server holding one WebM clip of three shots, open or needing keys; yields (url,
    still path, the search key or None)."""
    root = tmp_path_factory.mktemp(f"clip-site-{request.param}")
    clip = write_clip(SHOTS, container="webm", codec="libvpx", size=SIZE)
    frame = min(decode_frames(clip, limits=LIMITS), key=lambda f: abs(f.t - STILL_AT)).image
    still = root / "still.jpg"
    frame.save(still, quality=80)
    settings = make_settings(root / "home")
    init_catalog(settings)
    with open_runtime(settings) as runtime:
        ingest_video_bytes(runtime, clip, source="shots.webm")
        key = (create_api_key(runtime, name="search-key", scopes="search")[1]
               if request.param == "keyed" else None)
    port = free_port()
    process = start_server(settings, port)
    yield f"http://127.0.0.1:{port}", still, key
    process.terminate()
    process.wait(timeout=30)


def test_a_video_result_plays_from_its_second(browser, clip_site) -> None:
    url, still, key = clip_site
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    with still.open("rb") as handle:
        answer = httpx.post(f"{url}/v1/search", files={"file": handle}, headers=headers,
                            timeout=60).json()
    hit = answer["results"][0]
    t = hit["video"]["t"]
    assert 2.0 <= t <= 5.0  # a frame of the green shot
    if key:
        page, _ = _sign_in(browser, url, key)
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
    else:
        page, errors = open_page(browser, url)
    page.set_input_files("#file", str(still))
    first = page.locator("#results li").first
    first.wait_for()
    assert first.get_attribute("data-video-id") == str(hit["video"]["id"])
    assert first.locator(".time").inner_text() == f"▶ 0:{int(t):02d}"
    first.locator("button.thumb").click()
    page.wait_for_selector("#detail-clip:not([hidden])")
    wait_until(page, "document.getElementById('detail-video').readyState >= 1")
    current = page.evaluate("document.getElementById('detail-video').currentTime")
    assert abs(current - t) < 0.5, (current, t)
    caption = page.locator("#detail-clip-caption").inner_text()
    assert caption.startswith(f"Video {hit['video']['id']} from 0:0")
    source = page.evaluate("document.getElementById('detail-video').src")
    assert source.startswith("blob:" if key else url)
    assert float(source.rsplit("#t=", 1)[1]) == t
    page.screenshot(path=str(ARTIFACTS / f"video-result-{'keyed' if key else 'open'}.png"))
    page.keyboard.press("Escape")
    wait_until(page, "document.getElementById('detail-video').paused")
    assert errors == []
