"""Safe decoding: every accepted mode becomes upright RGB, every bad file a typed rejection."""

from __future__ import annotations

import hashlib
import io
import subprocess
import sys
import textwrap
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lookalike.retrieval.errors import ImageRejected
from lookalike.retrieval.images import (
    decode_image,
    make_thumbnail,
    sha256_hex,
)
from tests import imagefactory

LIMITS = {"max_bytes": 20_000_000, "max_pixels": 40_000_000}


def decode(data: bytes, **overrides: int) -> Image.Image:
    return decode_image(data, **{**LIMITS, **overrides}).image


def rejection(data: bytes, **overrides: int) -> ImageRejected:
    with pytest.raises(ImageRejected) as caught:
        decode_image(data, **{**LIMITS, **overrides})
    return caught.value


def test_sha256_hex_matches_known_digests() -> None:
    assert sha256_hex(b"") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    photo = imagefactory.jpeg_bytes()
    assert sha256_hex(photo) == hashlib.sha256(photo).hexdigest()


@pytest.mark.parametrize(
    ("build", "fmt", "size"),
    [
        (imagefactory.jpeg_bytes, "JPEG", (512, 512)),
        (imagefactory.png_bytes, "PNG", (451, 300)),
        (imagefactory.webp_bytes, "WEBP", (600, 400)),
        (imagefactory.heic_bytes, "HEIF", (600, 400)),
        (imagefactory.avif_bytes, "AVIF", (600, 400)),
        (imagefactory.bmp_bytes, "BMP", (120, 80)),
        (imagefactory.tiff_bytes, "TIFF", (120, 80)),
        (imagefactory.cmyk_jpeg, "JPEG", (600, 400)),
        (imagefactory.png16_gray, "PNG", (512, 512)),
        (imagefactory.palette_png, "PNG", (451, 300)),
        (imagefactory.rgba_png, "PNG", (128, 96)),
        (imagefactory.la_png, "PNG", (80, 40)),
        (imagefactory.gray_png, "PNG", (512, 512)),
        (imagefactory.bilevel_png, "PNG", (400, 328)),
    ],
)
def test_accepted_files_decode_to_rgb_of_their_size(build, fmt: str, size: tuple[int, int]) -> None:
    decoded = decode_image(build(), **LIMITS)
    assert decoded.format == fmt
    assert decoded.image.mode == "RGB"
    assert decoded.image.size == size == (decoded.width, decoded.height)
    assert not decoded.animated


def test_decoded_photo_keeps_its_content() -> None:
    original = np.asarray(imagefactory.photo("chelsea"), dtype=np.int16)
    decoded = np.asarray(decode(imagefactory.png_bytes("chelsea")), dtype=np.int16)
    assert np.array_equal(decoded, original)


def test_cmyk_jpeg_colours_survive_conversion() -> None:
    original = np.asarray(imagefactory.photo("coffee"), dtype=np.float64)
    decoded = np.asarray(decode(imagefactory.cmyk_jpeg()), dtype=np.float64)
    assert np.abs(decoded - original).mean() < 12


def test_sixteen_bit_gray_is_scaled_not_clipped() -> None:
    assert decode(imagefactory.png16_gray(32768)).getpixel((10, 10)) == (128, 128, 128)
    assert decode(imagefactory.png16_gray(65535)).getpixel((10, 10)) == (255, 255, 255)
    assert decode(imagefactory.png16_gray(0)).getpixel((10, 10)) == (0, 0, 0)
    camera = np.asarray(decode(imagefactory.png16_gray()))[..., 0]
    assert np.abs(camera.astype(np.int16) - imagefactory.skdata.camera()).max() <= 1


@pytest.mark.parametrize(("mode", "fmt"), [("I;16", "PNG"), ("I;16B", "TIFF"), ("I", "TIFF")])
def test_every_wide_gray_mode_is_scaled_to_the_nearest_level(mode: str, fmt: str) -> None:
    values = np.arange(-260, 65540, 5).reshape(-1, 140)
    if mode != "I":
        values = values.clip(0, 65535)
    raw = values.astype({"I;16": "<u2", "I;16B": ">u2", "I": "<i4"}[mode]).tobytes()
    buffer = io.BytesIO()
    Image.frombytes(mode, values.shape[::-1], raw).save(buffer, format=fmt)
    gray = np.asarray(decode(buffer.getvalue()))[..., 0]
    assert np.array_equal(gray, (values.clip(0, 65535) * 255 + 32767) // 65535)


def test_palette_png_with_transparency_composites_onto_white() -> None:
    plain = np.asarray(decode(imagefactory.palette_png()))
    index = int(np.asarray(Image.open(io.BytesIO(imagefactory.palette_png())))[0, 0])
    holed = np.asarray(decode(imagefactory.palette_png(transparent_index=index)))
    see_through = np.all(holed == 255, axis=-1) & ~np.all(plain == 255, axis=-1)
    assert see_through[0, 0]
    assert 0 < see_through.mean() < 0.5


def test_rgba_alpha_is_composited_onto_white_not_dropped() -> None:
    image = decode(imagefactory.rgba_png())
    assert image.getpixel((100, 50)) == (255, 255, 255)
    left = np.asarray(image)[:, :64]
    expected = np.asarray(imagefactory.photo("astronaut", (128, 96)))[:, :64]
    assert np.array_equal(left, expected)


def test_gray_alpha_is_composited_onto_white() -> None:
    image = decode(imagefactory.la_png())
    assert image.getpixel((10, 20)) == (0, 0, 0)
    assert image.getpixel((70, 20)) == (255, 255, 255)


@pytest.mark.parametrize("fmt", ["JPEG", "HEIF", "AVIF"])
def test_exif_orientation_is_applied_clockwise(fmt: str) -> None:
    decoded = decode_image(imagefactory.exif_rotated_jpeg(fmt), **LIMITS)
    assert (decoded.width, decoded.height) == (100, 160) == decoded.image.size
    red, green, blue = decoded.image.getpixel((decoded.width - 8, 8))
    assert red > 200 and green < 60 and blue < 60
    assert decoded.image.getpixel((8, 8))[0] < 200


def test_animated_gif_is_reported_and_its_first_frame_used() -> None:
    decoded = decode_image(imagefactory.animated_gif(frames=4), **LIMITS)
    assert decoded.animated
    assert decoded.image.mode == "RGB"
    first = np.asarray(imagefactory.photo("chelsea").crop((0, 0, 200, 150)), dtype=np.float64)
    error = np.abs(np.asarray(decoded.image, dtype=np.float64) - first).mean()
    assert error < 12


def test_mpo_is_accepted_and_reported_as_more_than_one_frame() -> None:
    decoded = decode_image(imagefactory.mpo_bytes(), **LIMITS)
    assert (decoded.format, decoded.animated, decoded.image.mode) == ("MPO", True, "RGB")


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (imagefactory.empty(), "empty"),
        (imagefactory.not_an_image(), "not_an_image"),
        (imagefactory.random_bytes(), "not_an_image"),
        (imagefactory.pdf_bytes(), "not_an_image"),
        (imagefactory.ico_bytes(), "unsupported_format"),
        (imagefactory.truncated_jpeg(), "truncated"),
        (imagefactory.truncated_png(), "truncated"),
        (imagefactory.bomb_png(), "too_many_pixels"),
    ],
)
def test_bad_files_are_rejected_with_their_kind(data: bytes, kind: str) -> None:
    assert rejection(data).kind == kind


def test_corrupt_pixel_data_is_a_decode_failure() -> None:
    png = bytearray(imagefactory.png_bytes())
    start = png.index(b"IDAT") + 200
    png[start : start + 60] = bytes(60)
    error = rejection(bytes(png))
    assert error.kind == "decode_failed"
    assert "PNG" in error.message


def test_byte_limit_is_checked_before_anything_else() -> None:
    bomb = imagefactory.bomb_png()
    error = rejection(bomb, max_bytes=len(bomb) - 1)
    assert error.kind == "too_many_bytes"
    assert str(len(bomb)) in error.message and "LOOKALIKE_MAX_UPLOAD_BYTES" in error.message
    assert rejection(imagefactory.not_an_image(), max_bytes=10).kind == "too_many_bytes"


def test_pixel_limit_message_names_size_and_limit() -> None:
    error = rejection(imagefactory.bomb_png(40000, 40000))
    assert error.message == (
        "image is 40000x40000 = 1600000000 pixels; the limit is 40000000 (LOOKALIKE_MAX_PIXELS)"
    )


@pytest.mark.parametrize("build", [imagefactory.heic_bytes, imagefactory.avif_bytes])
def test_phone_formats_keep_the_photo_and_meet_the_pixel_limit_from_their_header(build) -> None:
    original = np.asarray(imagefactory.photo("coffee", (300, 200)), dtype=np.float32)
    decoded = np.asarray(decode(build((300, 200))), dtype=np.float32)
    assert np.abs(decoded - original).mean() < 6
    with pytest.raises(ImageRejected) as refused:
        decode_image(build((1200, 900)), max_bytes=10**8, max_pixels=1_000_000)
    assert refused.value.kind == "too_many_pixels" and "1200x900" in str(refused.value)


def test_a_heic_cut_short_is_truncated() -> None:
    whole = imagefactory.heic_bytes((300, 200))
    assert rejection(whole[:len(whole) // 2]).kind == "truncated"


def test_pixel_limit_applies_to_ordinary_photos_too() -> None:
    assert rejection(imagefactory.jpeg_bytes(), max_pixels=512 * 512 - 1).kind == "too_many_pixels"
    assert decode(imagefactory.jpeg_bytes(), max_pixels=512 * 512).size == (512, 512)


def test_unsupported_format_message_lists_accepted_formats() -> None:
    message = rejection(imagefactory.ico_bytes()).message
    assert "ICO" in message and "JPEG" in message and "WEBP" in message


def test_bomb_is_rejected_without_python_allocations() -> None:
    bomb = imagefactory.bomb_png()
    tracemalloc.start()
    try:
        rejection(bomb)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_bomb_is_rejected_without_allocating_its_pixels() -> None:
    """PIL allocates pixels outside Python's allocator: watch the process's peak address space.

    A decoder that tried the 40000x40000 bomb would grow it by about 1.5 GB.
    """
    script = textwrap.dedent(
        """
        from lookalike.retrieval.errors import ImageRejected
        from lookalike.retrieval.images import decode_image
        from tests import imagefactory

        def peak_mb():
            with open("/proc/self/status") as status:
                line = next(row for row in status if row.startswith("VmPeak"))
            return int(line.split()[1]) // 1024

        bomb = imagefactory.bomb_png()
        decode_image(imagefactory.jpeg_bytes(), max_bytes=10**8, max_pixels=10**8)
        before = peak_mb()
        try:
            decode_image(bomb, max_bytes=10**8, max_pixels=40_000_000)
        except ImageRejected as error:
            print(error.kind, peak_mb() - before)
        """
    )
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=root, capture_output=True, text=True, check=True
    )
    kind, growth_mb = done.stdout.split()
    assert kind == "too_many_pixels"
    assert int(growth_mb) < 100


def test_draft_decodes_a_large_jpeg_smaller_but_reports_its_full_size() -> None:
    big = imagefactory.jpeg_bytes("astronaut", size=(2048, 1536))
    decoded = decode_image(big, **LIMITS, draft=(224, 224))
    assert (decoded.width, decoded.height) == (2048, 1536)
    assert decoded.image.size == (512, 384)  # 1/4 scale: 1/8 would leave 192 < 224 rows
    assert decode(big).size == (2048, 1536)


def test_draft_never_goes_below_the_requested_size() -> None:
    decoded = decode_image(imagefactory.jpeg_bytes(), **LIMITS, draft=(300, 300))
    assert decoded.image.size == (512, 512)


def test_draft_is_ignored_for_formats_without_one() -> None:
    assert decode_image(imagefactory.png_bytes(), **LIMITS, draft=(64, 64)).image.size == (451, 300)


def test_thumbnail_fits_the_box_and_keeps_the_aspect_ratio() -> None:
    thumb = Image.open(io.BytesIO(make_thumbnail(imagefactory.photo("coffee"), size=128)))
    assert thumb.format == "JPEG"
    assert thumb.size[0] == 128
    assert abs(thumb.size[1] - 128 * 400 / 600) <= 1


def test_thumbnail_of_a_portrait_or_small_image() -> None:
    portrait = imagefactory.photo("rocket").rotate(90, expand=True)
    assert max(Image.open(io.BytesIO(make_thumbnail(portrait, size=100))).size) == 100
    small = imagefactory.photo("astronaut", (40, 30)).convert("L")
    thumb = Image.open(io.BytesIO(make_thumbnail(small, size=100)))
    assert (thumb.size, thumb.mode) == ((40, 30), "RGB")


def test_thumbnail_rejects_a_non_positive_size() -> None:
    with pytest.raises(ValueError, match="positive"):
        make_thumbnail(imagefactory.photo(), size=0)
