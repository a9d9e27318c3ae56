"""Safe image decoding: byte and pixel limits before any pixel is read, EXIF orientation, RGB.

Memory per decode is a small multiple of the pixel count whatever the file: what the decoder
holds, the RGB result (4 bytes a pixel: PIL pads RGB) and one working buffer of the image's size.
Wide gray is scaled in PIL's own 16 or 32 bits, transparency is composited by pasting onto the
result, a palette's transparency by compositing its 256 colours, and only the first frame of an
animation is read. Peaks measured in bytes a pixel: JPEG 8, RGBA PNG 8, 16-bit gray PNG 7, RGB
PNG with a transparent colour 12, WebP 16 (libwebp's two canvases and Pillow's raw frame),
AVIF 8, HEIC 6.
"""

from __future__ import annotations

import functools
import hashlib
import io
from dataclasses import dataclass

from PIL import Image, ImageFile

from lookalike.retrieval.errors import ImageRejected


@dataclass(frozen=True)
class ImageFormat:
    """How files of an accepted format are named (the first suffix names a stored original)
    and served."""

    suffixes: tuple[str, ...]
    media_type: str


FORMATS: dict[str, ImageFormat] = {
    "JPEG": ImageFormat((".jpg", ".jpeg"), "image/jpeg"),
    "MPO": ImageFormat((".jpg",), "image/jpeg"),
    "PNG": ImageFormat((".png",), "image/png"),
    "GIF": ImageFormat((".gif",), "image/gif"),
    "WEBP": ImageFormat((".webp",), "image/webp"),
    "AVIF": ImageFormat((".avif",), "image/avif"),
    "HEIF": ImageFormat((".heic", ".heif"), "image/heic"),
    "BMP": ImageFormat((".bmp",), "image/bmp"),
    "TIFF": ImageFormat((".tif", ".tiff"), "image/tiff"),
}
ACCEPTED_FORMATS: tuple[str, ...] = tuple(FORMATS)
IMAGE_SUFFIXES = frozenset(suffix for kind in FORMATS.values() for suffix in kind.suffixes)
# MPO files open through JPEG's plugin; HEIF (a phone's HEIC photos) through pillow-heif's.
_PLUGINS = ("JPEG", "PNG", "GIF", "WEBP", "AVIF", "HEIF", "BMP", "TIFF")
SNIFF_BYTES = 16  # the prefix each accepted format's plugin recognises its files by
_DRAFT_FORMATS = frozenset({"JPEG", "MPO"})
_EXIF_ORIENTATION = 0x0112
_UPRIGHT = {  # EXIF orientation -> the transposition that makes the image upright
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_ROTATING_ORIENTATIONS = frozenset({5, 6, 7, 8})
_WIDE_GRAY_MODES = frozenset({"I", "I;16", "I;16B", "I;16L", "I;16N"})
_WHITE = (255, 255, 255)


@dataclass(frozen=True)
class DecodedImage:
    """A decoded RGB image and facts about its source file.

    `width` and `height` are the source's full size after EXIF rotation; `image` is smaller
    when a JPEG `draft` size was requested. `animated` says that the file holds more than one
    frame (an animation, an MPO's second view): only the first is decoded, and the others are
    not even counted, since counting a GIF's frames means parsing all of them.
    """

    image: Image.Image
    format: str
    width: int
    height: int
    animated: bool


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
    animated, orientation, image = _decode(source, draft)
    if orientation in _ROTATING_ORIENTATIONS:
        width, height = height, width
    return DecodedImage(image, str(source.format), width, height, animated)


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
    _register_heif()
    Image.init()
    for name in _PLUGINS:
        _, accept = Image.OPEN[name]
        looks_right = accept is None or accept(prefix)
        if looks_right and not isinstance(looks_right, str):
            return name
    return None


@functools.cache
def _register_heif() -> None:
    """Give Pillow pillow-heif's HEIF plugin, once (Pillow reads AVIF itself, not HEIC);
    imported at the first decode, not with this module (it takes about 70 ms)."""
    import pillow_heif  # noqa: PLC0415

    pillow_heif.register_heif_opener()


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
) -> tuple[bool, int, Image.Image]:
    """Load the first frame's pixels; return (animated, EXIF orientation, upright RGB image).

    `is_animated` looks at most at the second frame's header, unlike `n_frames`.
    Any exception from the decoder on untrusted bytes becomes an ImageRejected.
    """
    try:
        animated = bool(getattr(source, "is_animated", False))
        if draft is not None and source.format in _DRAFT_FORMATS:
            source.draft("RGB", draft)
        source.load()
        orientation = source.getexif().get(_EXIF_ORIENTATION, 1)
        return animated, orientation, _upright_rgb(source, orientation)
    except Image.DecompressionBombError as exc:
        message = f"an image frame is too large to decode: {exc}"
        raise ImageRejected("too_many_pixels", message) from exc
    except Exception as exc:
        kind = "truncated" if _is_truncation(exc) else "decode_failed"
        message = f"{source.format} image could not be decoded ({kind}): {exc}"
        raise ImageRejected(kind, message) from exc


def _is_truncation(exc: BaseException) -> bool:
    """PIL reports a file that ends early as EOFError or as an error saying 'truncated';
    libheif says 'Unexpected end of file'. (libavif says 'Truncated' only when the cut is in
    the header; a cut in the pixel data reads to it as a box that does not parse.)"""
    message = str(exc).lower()
    return isinstance(exc, EOFError) or "truncated" in message or "end of file" in message


def _upright_rgb(source: ImageFile.ImageFile, orientation: int) -> Image.Image:
    """The loaded source as a new upright RGB image, with one image-sized buffer in flight.

    The source's pixels are freed as soon as an RGB copy exists, before a rotation makes
    another. The result is never the source itself: a loaded file keeps its decoder's state
    (the bytes, libwebp's canvases and raw frame) for as long as it lives.
    """
    rgb = _to_rgb(source)
    if rgb is not source:
        source.close()
    method = _UPRIGHT.get(orientation)
    if method is not None:
        return rgb.transpose(method)
    return source.copy() if rgb is source else rgb


def _to_rgb(image: Image.Image) -> Image.Image:
    """RGB for every mode: wide gray scaled to 8 bits, transparency composited onto white.

    Returns `image` itself when it is already RGB without transparency. A palette image with
    transparency has its palette composited in place.
    """
    if image.mode in _WIDE_GRAY_MODES:
        image = _wide_gray_to_l(image)
    elif image.mode == "F":
        image = image.convert("L")
    if image.mode == "P" and image.has_transparency_data:
        _palette_onto_white(image)
    if image.has_transparency_data:
        return _onto_white(image)
    return image if image.mode == "RGB" else image.convert("RGB")


def _wide_gray_to_l(image: Image.Image) -> Image.Image:
    """Map 16-bit gray (0..65535) onto 8 bits (0..255) by scale, not by clipping.

    PIL scales "I;16" in 16 bits and "I" in 32 (values outside 0..65535 clip to black or
    white); the other 16-bit layouts go through "I", a copy freed as soon as it is scaled.
    """
    if image.mode not in ("I", "I;16"):
        return image.convert("I").point(_nearest_8_bit_level).convert("L")
    return image.point(_nearest_8_bit_level).convert("L")


def _nearest_8_bit_level(value: float) -> float:
    """PIL's point truncates: adding a half rounds 0..65535 to the nearest of 0..255."""
    return value * (255 / 65535) + 0.5


def _onto_white(image: Image.Image) -> Image.Image:
    """An image with transparency over a white RGB canvas; the canvas is the only new buffer
    for RGBA and LA (PIL pastes those onto RGB directly), other modes go through RGBA first."""
    if image.mode not in ("RGBA", "LA"):
        image = image.convert("RGBA")
    canvas = Image.new("RGB", image.size, _WHITE)
    canvas.paste(image, mask=image)
    return canvas


def _palette_onto_white(image: Image.Image) -> None:
    """Composite a palette image's transparency into its palette, in place: the work is done
    on 256 colours instead of every pixel, and the image keeps one byte per pixel."""
    assert image.palette is not None
    swatch = Image.frombytes("P", (256, 1), bytes(range(256)))
    swatch.putpalette(image.getpalette(image.palette.mode) or [], rawmode=image.palette.mode)
    if "transparency" in image.info:
        swatch.info["transparency"] = image.info.pop("transparency")
    image.putpalette(_onto_white(swatch).tobytes(), rawmode="RGB")
