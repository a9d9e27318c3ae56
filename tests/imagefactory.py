"""Builders of good and bad image files (as bytes) from scikit-image's bundled photos."""

from __future__ import annotations

import io
import struct
import zlib
from functools import cache

import numpy as np
from PIL import Image
from pillow_heif import register_heif_opener
from skimage import data as skdata

EXIF_ORIENTATION = 0x0112


@cache
def _photo(name: str) -> np.ndarray:
    """A bundled scikit-image photo as an RGB uint8 array (cached: tests reuse them often)."""
    pixels = getattr(skdata, name)()
    return pixels if pixels.ndim == 3 else np.stack([pixels] * 3, axis=-1)


def photo(name: str = "astronaut", size: tuple[int, int] | None = None) -> Image.Image:
    """An RGB PIL image of a bundled photo, resized to `size` (width, height) if given."""
    image = Image.fromarray(_photo(name)[..., :3])
    return image if size is None else image.resize(size, Image.Resampling.BILINEAR)


def _encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    if fmt == "HEIF":
        register_heif_opener()  # Pillow writes HEIF through pillow-heif's plugin
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def jpeg_bytes(
    name: str = "astronaut", size: tuple[int, int] | None = None, quality: int = 90
) -> bytes:
    """A baseline RGB JPEG of a bundled photo."""
    return _encode(photo(name, size), "JPEG", quality=quality)


def png_bytes(name: str = "chelsea", size: tuple[int, int] | None = None) -> bytes:
    """An RGB PNG of a bundled photo."""
    return _encode(photo(name, size), "PNG")


def cmyk_jpeg() -> bytes:
    """A CMYK JPEG (as print workflows write them) of the coffee photo."""
    return _encode(photo("coffee").convert("CMYK"), "JPEG", quality=90)


def png16_gray(value: int | None = None) -> bytes:
    """A 16-bit grayscale PNG: the camera photo scaled to 0..65535, or a flat `value`."""
    if value is None:
        pixels = skdata.camera().astype(np.uint16) * 257
    else:
        pixels = np.full((64, 96), value, dtype=np.uint16)
    return _encode(Image.fromarray(pixels), "PNG")


def palette_png(transparent_index: int | None = None) -> bytes:
    """A palette (mode P) PNG of the chelsea photo, optionally with one transparent entry."""
    image = photo("chelsea").quantize(colors=64)
    if transparent_index is None:
        return _encode(image, "PNG")
    return _encode(image, "PNG", transparency=transparent_index)


def rgba_png() -> bytes:
    """An RGBA PNG of the astronaut: left half opaque, right half fully transparent black."""
    image = photo("astronaut", (128, 96)).convert("RGBA")
    pixels = np.asarray(image).copy()
    pixels[:, 64:, :3] = 0
    pixels[:, 64:, 3] = 0
    return _encode(Image.fromarray(pixels), "PNG")


def la_png() -> bytes:
    """A gray+alpha (mode LA) PNG: black everywhere, transparent on the right half."""
    pixels = np.zeros((40, 80, 2), dtype=np.uint8)
    pixels[:, :40, 1] = 255
    return _encode(Image.fromarray(pixels), "PNG")


def gray_png() -> bytes:
    """An 8-bit grayscale (mode L) PNG of the camera photo."""
    return _encode(Image.fromarray(skdata.camera()), "PNG")


def bilevel_png() -> bytes:
    """A 1-bit PNG: the horse silhouette."""
    return _encode(Image.fromarray(skdata.horse()).convert("1"), "PNG")


def marked_photo() -> Image.Image:
    """A 160x100 landscape photo with a pure red block in its top-left corner."""
    pixels = np.asarray(photo("rocket", (160, 100))).copy()
    pixels[:20, :20] = (255, 0, 0)
    return Image.fromarray(pixels)


def exif_rotated_jpeg(fmt: str = "JPEG") -> bytes:
    """Stored 160x100 with a red top-left block; EXIF Orientation=6 makes it display 100x160.

    Orientation 6 means "rotate 90 degrees clockwise to display", so the red block must show up
    in the top-right corner of the upright image. `fmt` another format that carries EXIF
    (HEIF, AVIF: a phone's photo)."""
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = 6
    return _encode(marked_photo(), fmt, quality=95, exif=exif.tobytes())


def animated_gif(frames: int = 4) -> bytes:
    """An animated GIF whose frames are successive crops of the chelsea photo."""
    cat = photo("chelsea")
    images = [cat.crop((20 * i, 0, 20 * i + 200, 150)) for i in range(frames)]
    return _encode(images[0], "GIF", save_all=True, append_images=images[1:], duration=80, loop=0)


def mpo_bytes() -> bytes:
    """A two-frame MPO (the stereo JPEG container of many cameras) of the motorcycle pair."""
    left, right = (Image.fromarray(side) for side in skdata.stereo_motorcycle()[:2])
    return _encode(left, "MPO", save_all=True, append_images=[right], quality=85)


def webp_bytes() -> bytes:
    """A lossy WebP of the coffee photo."""
    return _encode(photo("coffee"), "WEBP", quality=80)


def heic_bytes(size: tuple[int, int] | None = None) -> bytes:
    """A HEIC (HEVC in HEIF, as phones save photos) of the coffee photo."""
    return _encode(photo("coffee", size), "HEIF", quality=80)


def avif_bytes(size: tuple[int, int] | None = None) -> bytes:
    """An AVIF (AV1 in HEIF) of the coffee photo."""
    return _encode(photo("coffee", size), "AVIF", quality=80)


def bmp_bytes() -> bytes:
    """A BMP of the coffee photo."""
    return _encode(photo("coffee", (120, 80)), "BMP")


def tiff_bytes() -> bytes:
    """An uncompressed TIFF of the coffee photo."""
    return _encode(photo("coffee", (120, 80)), "TIFF")


def ico_bytes() -> bytes:
    """A Windows icon: an image format PIL reads but the service does not accept."""
    return _encode(photo("astronaut", (64, 64)), "ICO")


def truncated_jpeg() -> bytes:
    """A JPEG cut off at 60% of its length (its header is intact)."""
    whole = jpeg_bytes("astronaut")
    return whole[: len(whole) * 6 // 10]


def truncated_png() -> bytes:
    """A PNG cut off at 60% of its length (its header is intact)."""
    whole = png_bytes("chelsea")
    return whole[: len(whole) * 6 // 10]


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def bomb_png(width: int = 40000, height: int = 40000) -> bytes:
    """A PNG whose header claims width x height 8-bit gray pixels, in a few kilobytes.

    Its IDAT holds only the first rows (a complete stream cannot be smaller than about
    1/1000 of the pixels): PIL identifies the file by its size, and a decoder that tried to
    read it would allocate the whole width x height buffer before noticing anything wrong.
    """
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    first_rows = zlib.compress(bytes((width + 1) * 16), 9)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", first_rows)
        + _png_chunk(b"IEND", b"")
    )


def not_an_image() -> bytes:
    """Plain text that happens to be posted as an upload."""
    return b"name,score\nastronaut,0.93\nchelsea,0.88\n" * 20


def random_bytes(count: int = 4096) -> bytes:
    """Seeded random bytes: not any image format."""
    return np.random.default_rng(7).integers(0, 256, size=count, dtype=np.uint8).tobytes()


def pdf_bytes() -> bytes:
    """A minimal PDF document: PIL writes PDFs but cannot read them."""
    return _encode(photo("astronaut", (32, 32)), "PDF")


def empty() -> bytes:
    """Zero bytes."""
    return b""


def bomb_40000() -> bytes:
    """A PNG that declares 40000x40000 pixels in a few hundred bytes."""
    return bomb_png(40000, 40000)


# Unusable uploads and the HTTP answer each must get: (maker, status, error kind).
BAD_UPLOADS = [
    (not_an_image, 415, "not_an_image"),
    (empty, 422, "empty"),
    (truncated_jpeg, 422, "truncated"),
    (bomb_40000, 413, "too_many_pixels"),
]
