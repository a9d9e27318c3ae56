"""The web page plays a video result from its second: in Debian's Chromium, headless, against
a real `lookalike serve` holding one clip, a still from the clip finds the clip's frame, the
card shows the frame's time, and a click plays the clip with `currentTime` near that time."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from lookalike.retrieval.video.decode import VideoLimits, decode_frames
from lookalike.services.bench.search import free_port, start_server
from lookalike.services.setup import init_catalog
from tests.services.api.test_browser import ARTIFACTS, browser, open_page, wait_until
from tests.services.conftest import make_settings
from tests.videofactory import Shot, write_clip

pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.browser]
__all__ = ["browser"]  # the Chromium fixture, shared with the other browser tests

SHOTS = [Shot(50, (200, 40, 40)), Shot(75, (40, 200, 40)), Shot(50, (40, 40, 200))]
SIZE = (192, 128)
LIMITS = VideoLimits(max_bytes=10**8, max_seconds=600, max_pixels=10**7, max_frames=10**5)
STILL_AT = 3.5  # seconds: inside the green shot (2 s to 5 s)


@pytest.fixture(scope="module")
def clip_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A server (keys off) holding one WebM clip of three shots; yields (url, still path)."""
    root = tmp_path_factory.mktemp("clip-site")
    clip = write_clip(SHOTS, container="webm", codec="libvpx", size=SIZE)
    frame = min(decode_frames(clip, limits=LIMITS), key=lambda f: abs(f.t - STILL_AT)).image
    still = root / "still.jpg"
    frame.save(still, quality=80)
    settings = make_settings(root / "home")
    init_catalog(settings)
    port = free_port()
    process = start_server(settings, port)
    url = f"http://127.0.0.1:{port}"
    answer = httpx.post(f"{url}/v1/videos", files={"file": ("shots.webm", io.BytesIO(clip))},
                        timeout=120)
    assert answer.status_code == 201, answer.text
    yield url, still
    process.terminate()
    process.wait(timeout=30)


def test_a_video_result_plays_from_its_second(browser, clip_site) -> None:
    url, still = clip_site
    with still.open("rb") as handle:
        answer = httpx.post(f"{url}/v1/search", files={"file": handle}, timeout=60).json()
    hit = answer["results"][0]
    t = hit["video"]["t"]
    assert 2.0 <= t <= 5.0  # a frame of the green shot
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
    page.screenshot(path=str(ARTIFACTS / "video-result.png"))
    page.keyboard.press("Escape")
    wait_until(page, "document.getElementById('detail-video').paused")
    assert errors == []
