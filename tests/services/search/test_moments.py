"""The moment of a clip through the real search path: a fixed scene where only a small
detail moves is ingested as a video, and stills of it come back with the right second."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from lookalike.services.api.app import create_app
from lookalike.services.ingest.videos import ingest_video_bytes
from lookalike.services.runtime import Runtime
from lookalike.services.search.query import search_vector
from lookalike.services.setup import init_catalog, open_runtime
from tests.services.conftest import make_settings
from tests.videofactory import moving_detail_frames, write_frames

pytestmark = pytest.mark.slow

FPS = 10
SECONDS = 16  # frames indexed every 2 s: 0, 2, ..., 14
SIZE = (256, 192)
TIMES = [2.2, 5.9, 8.1, 12.2]  # each within 0.2 s of an indexed frame (every 2 s)


@pytest.fixture(scope="module")
def frames() -> list:
    return moving_detail_frames(FPS * SECONDS, size=SIZE, patch=48)


@pytest.fixture()
def clip_home(tmp_path: Path, frames: list) -> Iterator[Runtime]:
    """A SQLite catalog holding the one clip."""
    settings = make_settings(tmp_path / "home")
    init_catalog(settings)
    runtime = open_runtime(settings)
    ingest_video_bytes(runtime, write_frames(frames, fps=FPS, size=SIZE), source="detail.mp4")
    yield runtime
    runtime.close()


def still(frames: list, t: float) -> bytes:
    """The frame at second t as a screenshot: a 90 % crop, half size, JPEG 75."""
    image = Image.fromarray(frames[round(t * FPS)])
    width, height = image.size
    crop = image.crop((width // 20, height // 20, width // 20 + width * 9 // 10,
                       height // 20 + height * 9 // 10))
    buffer = io.BytesIO()
    crop.resize((crop.width // 2, crop.height // 2)).save(buffer, format="JPEG", quality=75)
    return buffer.getvalue()


def test_the_refined_moment_is_the_stills_second(clip_home: Runtime, frames: list) -> None:
    for t in TIMES:
        hit = search_vector(clip_home, space_name=None, k=1, query=still(frames, t)).results[0]
        assert hit.video is not None and abs(hit.video.t - t) < 1.0, (t, hit.video)
        assert hit.video.frames[0].image_id == hit.image_id and hit.video.frames[0].t == hit.t
        assert abs(hit.t - hit.video.t) <= 1.0  # the indexed frame nearest the moment
        assert len({frame.image_id for frame in hit.video.frames}) == len(hit.video.frames)


@pytest.fixture()
def sparse_home(tmp_path: Path, frames: list) -> Iterator[Runtime]:
    """The clip indexed only every 6 s (0, 6, 12): a still at 3 s or 9 s is 3 s from any
    indexed frame."""
    settings = make_settings(tmp_path / "sparse", video_every_s=6.0)
    init_catalog(settings)
    runtime = open_runtime(settings)
    ingest_video_bytes(runtime, write_frames(frames, fps=FPS, size=SIZE), source="detail.mp4")
    yield runtime
    runtime.close()


@pytest.mark.parametrize("t", [3.0, 9.1])
def test_a_still_between_indexed_frames_finds_its_second_in_the_decoded_clip(
        sparse_home: Runtime, frames: list, t: float) -> None:
    hit = search_vector(sparse_home, space_name=None, k=1, query=still(frames, t)).results[0]
    assert hit.video is not None and abs(hit.video.t - t) <= 2.0, (t, hit.video)
    assert hit.t is not None and abs(hit.t - hit.video.t) <= 3.0  # the nearest indexed frame
    assert hit.video.frames[0].image_id == hit.image_id
    with open_runtime(sparse_home.settings.model_copy(update={"moment_anchors": 0})) as off:
        indexed = search_vector(off, space_name=None, k=1, query=still(frames, t)).results[0]
    assert indexed.video is not None and abs(indexed.video.t - t) > 2.0, indexed.video
    assert indexed.video.t == indexed.t


def test_without_refinement_the_global_vector_answers(clip_home: Runtime,
                                                      frames: list) -> None:
    answers = [search_vector(clip_home, space_name=None, k=1, query=still(frames, t),
                             refine_moment=False).results[0] for t in TIMES]
    for answer in answers:
        assert answer.video is not None and answer.video.frames[0].image_id == answer.image_id
        assert answer.score == max(frame.score for frame in answer.video.frames)


def test_the_api_switches_the_refinement(clip_home: Runtime, frames: list) -> None:
    with TestClient(create_app(clip_home.settings)) as client:
        files = {"file": ("still.jpg", still(frames, 8.1), "image/jpeg")}
        on = client.post("/v1/search?k=1", files=files).json()["results"][0]
        off = client.post("/v1/search?k=1&refine_moment=false", files=files).json()
    assert abs(on["video"]["t"] - 8.1) < 1.0
    assert on["video"]["frames"][0]["image_id"] == on["image_id"]
    best = off["results"][0]
    assert best["score"] == max(frame["score"] for frame in best["video"]["frames"])
