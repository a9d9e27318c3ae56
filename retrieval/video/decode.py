"""Safe video decoding with PyAV: byte, duration, frame-size and frame-count limits, checked
on the container's header before any frame is decoded and again while frames stream out.

Frames are yielded one at a time as RGB PIL images with their presentation time in seconds,
so memory stays at one frame (plus the decoder's own buffers) whatever the clip's length.
Each frame is turned upright as its display matrix says (a phone's portrait clip is stored
landscape with a rotation of -90 degrees), as images are by their EXIF orientation.
A stream that ends well before the duration its header declares is `truncated`; any decoder
error on the untrusted bytes is `decode_failed`: never a partial result without an error.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import av.container
import av.error
import av.video
from PIL import Image

from lookalike.retrieval.errors import VideoRejected

# FFmpeg demuxer names -> the file kind accepted: mp4, mov, avi, mkv and webm.
ACCEPTED_CONTAINERS: dict[str, str] = {
    "mov,mp4,m4a,3gp,3g2,mj2": "mp4",
    "avi": "avi",
    "matroska,webm": "mkv",
}
VIDEO_SUFFIXES: tuple[str, ...] = (".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm")
TRUNCATION_SLACK_SECONDS = 0.5  # a stream may end this much before its declared duration
_SIGNATURES: tuple[tuple[int, bytes], ...] = (
    (4, b"ftyp"),  # ISO base media (mp4, mov)
    (4, b"moov"),
    (4, b"mdat"),
    (4, b"wide"),
    (4, b"free"),
    (0, b"RIFF"),  # avi (RIFF....AVI )
    (0, b"\x1a\x45\xdf\xa3"),  # Matroska / WebM (EBML)
)


# Counter-clockwise quarter turns of a display matrix -> the transposition that shows it.
_QUARTER_TURNS = {1: Image.Transpose.ROTATE_90, 2: Image.Transpose.ROTATE_180,
                  3: Image.Transpose.ROTATE_270}


@dataclass(frozen=True)
class VideoLimits:
    """What a clip may cost: file bytes, seconds, pixels per frame and decoded frames."""

    max_bytes: int
    max_seconds: float
    max_pixels: int
    max_frames: int


@dataclass(frozen=True)
class VideoInfo:
    """Facts from a clip's header: container kind, codec, frame size, rate and duration."""

    container: str
    codec: str
    width: int
    height: int
    fps: float
    duration: float


@dataclass(frozen=True)
class VideoFrame:
    """One decoded frame: its presentation time in seconds and its RGB pixels."""

    t: float
    image: Image.Image


def looks_like_video(prefix: bytes) -> bool:
    """Whether a file's first bytes carry a signature of an accepted container."""
    return any(prefix[at : at + len(magic)] == magic for at, magic in _SIGNATURES)


def probe_video(data: bytes, *, limits: VideoLimits) -> VideoInfo:
    """Read a clip's header and check it against the limits; no frame is decoded."""
    with _open(data, limits) as container:
        return _info(container, limits)


def decode_frames(data: bytes, *, limits: VideoLimits) -> Iterator[VideoFrame]:
    """Yield every frame of the clip's first video stream in order, within the limits."""
    with _open(data, limits) as container:
        info = _info(container, limits)
        stream = container.streams.video[0]
        last = -1.0
        count = 0
        for frame in _frames(container, stream):
            count += 1
            _check_running(count, frame, limits)
            last = max(last, _seconds(frame, stream))
            yield VideoFrame(last, upright_image(frame))
        _check_complete(count, last, info)


def decode_span(data: bytes | Path, *, start: float, end: float, limits: VideoLimits,
                most: int | None = None) -> list[VideoFrame]:
    """The frames shown from `start` to `end` seconds of a clip (its bytes, or its file, read
    only as far as the span needs), found by one seek to the keyframe at or before `start`
    and decoded no further than `end`, within the limits (the frames
    decoded from that keyframe count); with `most`, at most that many, the first frame at or
    after each of `most` evenly spaced times of the span (by time, not by frame count: a
    header's frame rate may not be the stream's), the others decoded but not converted."""
    if end < start:
        raise ValueError(f"the span ends ({end} s) before it starts ({start} s)")
    if most is not None and most < 1:
        raise ValueError(f"most must be at least 1, not {most}")
    step = (end - start) / most if most is not None else 0.0
    with _open(data, limits) as container:
        _info(container, limits)
        stream = container.streams.video[0]
        _seek(container, stream, start)
        kept: list[VideoFrame] = []
        due, t = start, -1.0
        for count, frame in enumerate(_frames(container, stream), start=1):
            _check_running(count, frame, limits)
            t = max(t, _seconds(frame, stream))  # as decode_frames: times never go back
            if t > end or (most is not None and len(kept) >= most):
                break
            if t >= due:
                kept.append(VideoFrame(t, upright_image(frame)))
                if step > 0:  # the next of the evenly spaced times
                    due = start + step * (math.floor((t - start) / step) + 1)
        return kept


def upright_image(frame: av.VideoFrame) -> Image.Image:
    """The frame as an RGB image turned as its display matrix says: `rotation` is the
    counter-clockwise turn in degrees, rounded to a quarter turn (the only turns cameras
    write); a mirroring in the matrix is not applied."""
    image: Image.Image = frame.to_image()  # type: ignore[no-untyped-call]
    turn = _QUARTER_TURNS.get(round(frame.rotation / 90) % 4)
    return image if turn is None else image.transpose(turn)


def _seek(container: av.container.InputContainer, stream: av.video.VideoStream,
          start: float) -> None:
    """Move the demuxer to the keyframe at or before `start` (seconds from the stream's
    start); a decoder error becomes decode_failed."""
    if start <= 0 or not stream.time_base:
        return
    origin = float(stream.start_time * stream.time_base) if stream.start_time else 0.0
    try:
        container.seek(int((start + origin) / stream.time_base), stream=stream, backward=True)
    except (av.error.FFmpegError, ValueError, OSError) as exc:
        raise VideoRejected("decode_failed", f"the video cannot seek to {start:.2f} s: "
                            f"{exc}") from exc


def _open(data: bytes | Path, limits: VideoLimits) -> av.container.InputContainer:
    """Open the bytes or the file as an input container, after the byte limit and signature
    checks."""
    size = data.stat().st_size if isinstance(data, Path) else len(data)
    if not size:
        raise VideoRejected("empty", "the video file is empty (0 bytes)")
    if size > limits.max_bytes:
        raise VideoRejected(
            "too_many_bytes",
            f"video file is {size} bytes; the limit is {limits.max_bytes} "
            "(LOOKALIKE_MAX_VIDEO_BYTES)",
        )
    if not looks_like_video(_head(data)):
        raise VideoRejected(
            "not_a_video", "the file is not a video in an accepted container (mp4, mov, avi, "
            "mkv, webm)"
        )
    try:
        return av.open(str(data) if isinstance(data, Path) else io.BytesIO(data), mode="r")
    except (av.error.FFmpegError, ValueError, OSError) as exc:
        raise VideoRejected("decode_failed", f"the video container cannot be read: {exc}") from exc


def _head(data: bytes | Path) -> bytes:
    """The first 16 bytes, where a container's signature is."""
    if isinstance(data, Path):
        with data.open("rb") as file:
            return file.read(16)
    return data[:16]


def _info(container: av.container.InputContainer, limits: VideoLimits) -> VideoInfo:
    """The header's facts, rejected when the container kind or any limit is wrong."""
    kind = ACCEPTED_CONTAINERS.get(container.format.name)
    if kind is None:
        raise VideoRejected(
            "unsupported_format",
            f"container {container.format.name} is not accepted; accepted: mp4, mov, avi, "
            "mkv, webm",
        )
    if not container.streams.video:
        raise VideoRejected("no_video_stream", "the file holds no video stream")
    stream = container.streams.video[0]
    info = VideoInfo(
        kind, stream.codec_context.name, stream.codec_context.width,
        stream.codec_context.height, _fps(stream), _duration(container, stream),
    )
    _check_header(info, limits)
    return info


def _check_header(info: VideoInfo, limits: VideoLimits) -> None:
    """Reject a clip whose declared size, duration or frame count exceeds a limit."""
    pixels = info.width * info.height
    if pixels <= 0:
        raise VideoRejected("decode_failed", "the video stream declares no frame size")
    if pixels > limits.max_pixels:
        raise VideoRejected(
            "too_many_pixels",
            f"video frames are {info.width}x{info.height} = {pixels} pixels; the limit is "
            f"{limits.max_pixels} (LOOKALIKE_MAX_PIXELS)",
        )
    if info.duration > limits.max_seconds:
        raise VideoRejected(
            "too_long",
            f"video lasts {info.duration:.1f} s; the limit is {limits.max_seconds:g} s "
            "(LOOKALIKE_MAX_VIDEO_SECONDS)",
        )
    if info.duration * info.fps > limits.max_frames + 1:
        raise _too_many_frames(round(info.duration * info.fps), limits)


def _check_running(count: int, frame: av.VideoFrame, limits: VideoLimits) -> None:
    """Limits a lying header cannot dodge: frames decoded so far, and each frame's size."""
    if count > limits.max_frames:
        raise _too_many_frames(count, limits)
    if frame.width * frame.height > limits.max_pixels:
        raise VideoRejected(
            "too_many_pixels",
            f"a video frame is {frame.width}x{frame.height}; the limit is {limits.max_pixels} "
            "pixels (LOOKALIKE_MAX_PIXELS)",
        )


def _check_complete(count: int, last: float, info: VideoInfo) -> None:
    """A stream that stops well before its declared duration was cut short."""
    if count == 0:
        raise VideoRejected("truncated", "the video stream holds no decodable frame")
    frame_time = 1.0 / info.fps if info.fps > 0 else 0.0
    if info.duration - (last + frame_time) > TRUNCATION_SLACK_SECONDS:
        raise VideoRejected(
            "truncated",
            f"the video stream ends at {last:.2f} s but declares {info.duration:.2f} s: the "
            "file is cut short; upload the whole file",
        )


def _too_many_frames(count: int, limits: VideoLimits) -> VideoRejected:
    return VideoRejected(
        "too_many_frames",
        f"video holds at least {count} frames; the limit is {limits.max_frames} "
        "(LOOKALIKE_MAX_VIDEO_FRAMES)",
    )


def _frames(
    container: av.container.InputContainer, stream: av.video.VideoStream
) -> Iterator[av.VideoFrame]:
    """Decoded frames of one stream; a decoder error becomes decode_failed."""
    try:
        yield from container.decode(stream)
    except (av.error.FFmpegError, ValueError, OSError) as exc:
        raise VideoRejected("decode_failed", f"the video stream cannot be decoded: {exc}") from exc


def _seconds(frame: av.VideoFrame, stream: av.video.VideoStream) -> float:
    """A frame's presentation time in seconds from the stream's start."""
    if frame.time is None:
        return 0.0
    start = 0.0
    if stream.start_time and stream.time_base:
        start = float(stream.start_time * stream.time_base)
    return max(0.0, float(frame.time) - start)


def _fps(stream: av.video.VideoStream) -> float:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    return float(rate) if rate else 0.0


def _duration(container: av.container.InputContainer, stream: av.video.VideoStream) -> float:
    """The longest duration the header declares: the stream's, the container's, or its frame
    count over its rate (an AVI cut short shortens the first two but keeps the count)."""
    declared = [0.0]
    if stream.duration and stream.time_base:
        declared.append(float(stream.duration * stream.time_base))
    elif container.duration:
        declared.append(float(Fraction(container.duration, av.time_base)))
    if stream.frames and stream.average_rate:
        declared.append(float(stream.frames / stream.average_rate))
    return max(declared)
