"""Decoding memory is bounded by the pixel count, whatever the mode, alpha or frame count.

PIL allocates pixels outside Python's allocator, so tracemalloc cannot see them: each case is
decoded in a fresh process that reports how far its peak resident set grew during the decode.
(Not getrusage's ru_maxrss: a child started by exec inherits its parent's peak there.)
"""

from __future__ import annotations

import io
import struct
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lookalike.retrieval.images import decode_image

SIDE = 4000  # 16 M pixels: a wide intermediate of this image would be obvious in the peak
# The RGB result is 4 bytes a pixel (PIL pads RGB to 4), the decoded source up to 4 more
# (RGBA), and there is room for one 1- or 2-byte working copy; never a copy of 8-byte integers.
BYTES_PER_PIXEL = 10
MARGIN = 24 * 2**20  # allocator slack, decoder state, the zlib window, Python objects
LIMITS = {"max_bytes": 10**9, "max_pixels": 40_000_000}

_CHILD = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from lookalike.retrieval.images import decode_image

    def status_bytes(field: str) -> int:
        with open("/proc/self/status") as status:
            line = next(row for row in status if row.startswith(field + ":"))
        return int(line.split()[1]) * 1024

    warm_up, data = Path(sys.argv[1]).read_bytes(), Path(sys.argv[2]).read_bytes()
    decode_image(warm_up, max_bytes=10**9, max_pixels=40_000_000)
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")  # the peak resident set (VmHWM) starts again from here
    before = status_bytes("VmRSS")
    decoded = decode_image(data, max_bytes=10**9, max_pixels=40_000_000)
    print(status_bytes("VmHWM") - before, decoded.image.mode, *decoded.image.size)
    """
)


def _gradient(side: int) -> np.ndarray:
    """A (side, side) float ramp in [0, 1]: smooth, so its PNG stays small and quick to write."""
    ramp = np.linspace(0.0, 1.0, side, dtype=np.float32)
    return (ramp[:, None] + ramp[None, :]) / 2


def _png(image: Image.Image, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1, **params)
    return buffer.getvalue()


def gray16_png(side: int = SIDE) -> bytes:
    return _png(Image.fromarray((_gradient(side) * 65535).astype(np.uint16)))


def rgba_png(side: int = SIDE) -> bytes:
    level = (_gradient(side) * 255).astype(np.uint8)
    pixels = np.stack([level, level[::-1], level.T, level[:, ::-1]], axis=-1)
    return _png(Image.fromarray(pixels))


def palette_png(side: int = SIDE) -> bytes:
    image = Image.fromarray((_gradient(side) * 255).astype(np.uint8)).convert("P")
    return _png(image, transparency=0)


def _gif_frame(pixel: int) -> bytes:
    """A 1x1 frame at the top-left corner: graphic control block, descriptor, LZW data.

    The LZW data are three 9-bit codes, least significant bit first: clear, pixel, end.
    """
    control = b"\x21\xf9\x04\x04\x0a\x00\x00\x00"
    descriptor = b"\x2c" + struct.pack("<4HB", 0, 0, 1, 1, 0)
    codes = (256 | pixel << 9 | 257 << 18).to_bytes(4, "little")
    return control + descriptor + bytes([8, len(codes)]) + codes + b"\x00"


def animated_gif(frames: int, side: int = SIDE // 2) -> bytes:
    """A GIF with one full frame, then `frames - 1` one-pixel frames drawn over its corner."""
    buffer = io.BytesIO()
    first = Image.fromarray((_gradient(side) * 255).astype(np.uint8)).convert("P")
    first.save(buffer, format="GIF")
    still = buffer.getvalue()
    assert still.endswith(b";")
    return still[:-1] + b"".join(_gif_frame(i % 2) for i in range(frames - 1)) + b";"


def peak_growth(tmp_path: Path, data: bytes) -> tuple[int, str, tuple[int, int]]:
    """(peak RSS growth in bytes, result mode, result size) of decoding `data` in a new process.

    The child first decodes a tiny image of the same format, so plugin imports and first-use
    set-up are not charged to the decode.
    """
    image = Image.open(io.BytesIO(data))
    tiny = io.BytesIO()
    image.resize((8, 8)).save(tiny, format=image.format)
    (tmp_path / "warm").write_bytes(tiny.getvalue())
    (tmp_path / "case").write_bytes(data)
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(tmp_path / "warm"), str(tmp_path / "case")],
        cwd=root, capture_output=True, text=True, check=True,
    )
    growth, mode, width, height = done.stdout.split()
    return int(growth), mode, (int(width), int(height))


def bound(pixels: int) -> int:
    return BYTES_PER_PIXEL * pixels + MARGIN


LINUX_PROC = pytest.mark.skipif(
    not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc peak-RSS counters"
)


@pytest.mark.slow
@LINUX_PROC
@pytest.mark.parametrize(
    "build",
    [gray16_png, rgba_png, palette_png, lambda: animated_gif(200)],
    ids=["gray16", "rgba", "palette-transparent", "gif-200-frames"],
)
def test_decoding_peak_memory_is_bounded_by_the_pixel_count(
    tmp_path: Path, build: Callable[[], bytes]
) -> None:
    data = build()
    growth, mode, size = peak_growth(tmp_path, data)
    pixels = size[0] * size[1]
    assert mode == "RGB"
    assert growth < bound(pixels), (
        f"peak grew {growth / 2**20:.0f} MiB = {growth / pixels:.1f} bytes a pixel for {size}"
    )


@pytest.mark.slow
@LINUX_PROC
def test_many_frames_cost_the_memory_of_one(tmp_path: Path) -> None:
    one, _, _ = peak_growth(tmp_path, animated_gif(1))
    many, _, _ = peak_growth(tmp_path, animated_gif(200))
    assert many < one + 8 * 2**20


def _decode_seconds(data: bytes) -> float:
    """The least CPU time of three decodes (CPU time, not wall time: the machine may be busy)."""
    times = []
    for _ in range(3):
        started = time.process_time()
        decode_image(data, **LIMITS)
        times.append(time.process_time() - started)
    return min(times)


def test_frames_after_the_first_are_not_walked() -> None:
    """A GIF's frame count is only known by parsing every frame: decoding must not need it."""
    one = _decode_seconds(animated_gif(1, side=64))
    many = _decode_seconds(animated_gif(100_000, side=64))
    assert many < 5 * one + 0.02, f"{many:.3f} s for 100000 frames, {one:.4f} s for one"
