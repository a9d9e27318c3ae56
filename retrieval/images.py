"""Safe image decoding: byte and pixel limits before any pixel is read, EXIF orientation, RGB."""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFile, ImageOps

from lookalike.retrieval.errors import ImageRejected

ACCEPTED_FORMATS: tuple[str, ...] = ("JPEG", "MPO", "PNG", "GIF", "WEBP", "BMP", "TIFF")
_PLUGINS = ("JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF")  # MPO files open through JPEG's
SNIFF_BYTES = 16  # the prefix each accepted format's plugin recognises its files by
_DRAFT_FORMATS = frozenset({"JPEG", "MPO"})
_ROTATING_ORIENTATIONS = frozenset({5, 6, 7, 8})
_EXIF_ORIENTATION = 0x0112
_WHITE = (255, 255, 255, 255)


@dataclass(frozen=True)
class DecodedImage:
    """A decoded RGB image and facts about its source file.

    `width` and `height` are the source's full size after EXIF rotation; `image` is smaller
    when a JPEG `draft` size was requested.
    """

    image: Image.Image
    format: str
    width: int
    height: int
    frames: int


def sha256_hex(data: bytes) -> str:
    """Hex SHA-256 of the raw bytes: the catalog's identity of an image file."""
    return hashlib.sha256(data).hexdigest()


def decode_image(
    data: bytes, *, max_bytes: int, max_pixels: int, draft: tuple[int, int] | None = None
) -> DecodedImage:
    """Decode untrusted bytes into an upright RGB image, or raise ImageRejected saying why.

    `draft` lets the JPEG decoder downscale by 1/2, 1/4 or 1/8 while keeping at least that size.
    """
    _check_byte_count(data, max_bytes)
    source = _identify(data)
    width, height = source.size
    if width * height > max_pixels:
        raise ImageRejected(
            "too_many_pixels",
            f"image is {width}x{height} = {width * height} pixels; the limit is {max_pixels} "
            "(LOOKALIKE_MAX_PIXELS)",
        )
    frames, orientation, image = _decode(source, draft)
    if orientation in _ROTATING_ORIENTATIONS:
        width, height = height, width
    return DecodedImage(image, str(source.format), width, height, frames)


def load_for_model(data: bytes, *, size: int, max_bytes: int, max_pixels: int) -> Image.Image:
    """Decode and squash a whole image to size x size RGB (a DataLoader worker's job)."""
    decoded = decode_image(data, max_bytes=max_bytes, max_pixels=max_pixels, draft=(size, size))
    return decoded.image.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=2.0)


def make_thumbnail(image: Image.Image, *, size: int) -> bytes:
    """JPEG bytes of the image shrunk to fit in size x size, aspect ratio kept."""
    if size < 1:
        raise ValueError(f"thumbnail size must be a positive number of pixels, got {size}")
    thumbnail = image.convert("RGB") if image.mode != "RGB" else image.copy()
    thumbnail.thumbnail((size, size), Image.Resampling.BICUBIC)
    buffer = io.BytesIO()
    thumbnail.save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


def _check_byte_count(data: bytes, max_bytes: int) -> None:
    if not data:
        raise ImageRejected("empty", "the image file is empty (0 bytes)")
    if len(data) > max_bytes:
        raise ImageRejected(
            "too_many_bytes",
            f"image file is {len(data)} bytes; the limit is {max_bytes} "
            "(LOOKALIKE_MAX_UPLOAD_BYTES)",
        )


def _identify(data: bytes) -> ImageFile.ImageFile:
    """Read only the header with an accepted format's plugin; any failure is a rejection.

    The plugins are called directly rather than through Image.open, whose decompression-bomb
    check would raise before the size is known; the caller applies its own pixel limit next.
    """
    name = _plugin_for(data[:SNIFF_BYTES])
    if name is None:
        raise _unaccepted(data)
    factory, _ = Image.OPEN[name]
    try:
        return factory(io.BytesIO(data), "")
    except Exception as exc:
        kind = "truncated" if _is_truncation(exc) else "decode_failed"
        message = f"{name} file header could not be read ({kind}): {exc}"
        raise ImageRejected(kind, message) from exc


def looks_like_image(prefix: bytes) -> bool:
    """Whether the first SNIFF_BYTES of a file are an accepted format's signature: the same
    test the decoder starts with, so a download can stop early on a page that is no image."""
    return _plugin_for(prefix[:SNIFF_BYTES]) is not None


def _plugin_for(prefix: bytes) -> str | None:
    """The accepted format whose plugin recognises this file prefix, if any."""
    Image.init()
    for name in _PLUGINS:
        _, accept = Image.OPEN[name]
        looks_right = accept is None or accept(prefix)
        if looks_right and not isinstance(looks_right, str):
            return name
    return None


def _unaccepted(data: bytes) -> ImageRejected:
    """Tell a file in another image format (unsupported_format) from a non-image."""
    allowed = ", ".join(ACCEPTED_FORMATS)
    try:
        with Image.open(io.BytesIO(data)) as other:
            found = other.format
    except Image.DecompressionBombError:
        found = "a huge image"
    except Exception:
        return ImageRejected(
            "not_an_image", f"the file is not an image in a readable format; accepted: {allowed}"
        )
    return ImageRejected(
        "unsupported_format", f"image format {found} is not accepted; accepted: {allowed}"
    )


def _decode(
    source: ImageFile.ImageFile, draft: tuple[int, int] | None
) -> tuple[int, int, Image.Image]:
    """Load the first frame's pixels; return (frames, EXIF orientation, upright RGB image).

    Any exception from the decoder on untrusted bytes becomes an ImageRejected.
    """
    try:
        frames = getattr(source, "n_frames", 1)
        source.seek(0)
        if draft is not None and source.format in _DRAFT_FORMATS:
            source.draft("RGB", draft)
        source.load()
        orientation = source.getexif().get(_EXIF_ORIENTATION, 1)
        upright = ImageOps.exif_transpose(source)
        return frames, orientation, _to_rgb(upright)
    except Image.DecompressionBombError as exc:
        message = f"an image frame is too large to decode: {exc}"
        raise ImageRejected("too_many_pixels", message) from exc
    except Exception as exc:
        kind = "truncated" if _is_truncation(exc) else "decode_failed"
        message = f"{source.format} image could not be decoded ({kind}): {exc}"
        raise ImageRejected(kind, message) from exc


def _is_truncation(exc: BaseException) -> bool:
    """PIL reports a file that ends early as EOFError or as an error saying 'truncated'."""
    return isinstance(exc, EOFError) or "truncated" in str(exc).lower()


def _to_rgb(image: Image.Image) -> Image.Image:
    """RGB for every mode: wide gray scaled to 8 bits, transparency composited onto white."""
    if image.mode == "I" or image.mode.startswith("I;16"):
        image = _wide_gray_to_l(image)
    elif image.mode == "F":
        image = image.convert("L")
    if image.has_transparency_data:
        canvas = Image.new("RGBA", image.size, _WHITE)
        canvas.alpha_composite(image.convert("RGBA"))
        return canvas.convert("RGB")
    return image.convert("RGB")


def _wide_gray_to_l(image: Image.Image) -> Image.Image:
    """Map 16-bit gray (0..65535) onto 8 bits (0..255) by scale, not by clipping."""
    values = np.asarray(image.convert("I"), dtype=np.int64)
    scaled = (np.clip(values, 0, 65535) * 255 + 32767) // 65535
    return Image.fromarray(scaled.astype(np.uint8))
