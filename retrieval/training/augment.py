"""Image transforms that make near-duplicates: for the near-duplicate benchmark and fine-tuning.

Every transform takes a PIL image and a random source (a `numpy.random.Generator` or an int
seed) and returns a new RGB image; the same seed always gives the same result. `TRANSFORMS`
maps each name to its transform so callers can pick them by name.
"""

from __future__ import annotations

import io
import string
from collections.abc import Callable, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageFont, ImageOps

from lookalike.retrieval.errors import InvalidTransformParameter, UnknownTransform

__all__ = [
    "TRANSFORMS",
    "RandomSource",
    "blur",
    "colour_shift",
    "downscale",
    "jpeg",
    "local_warp",
    "mirror",
    "near_duplicate_variants",
    "overlay_text",
    "random_crop",
    "rotate",
    "shear",
]

RandomSource = np.random.Generator | int
_WARP_CELLS = 4
_TEXT_ALPHABET = string.ascii_uppercase + string.digits


def _generator(rng: RandomSource | None) -> np.random.Generator:
    """`rng` itself, or a generator seeded with it."""
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def _rgb(image: Image.Image) -> Image.Image:
    """The image in RGB mode (a copy where it already is)."""
    return image.convert("RGB")


def _check_range(name: str, low: float, high: float, lowest: float, highest: float) -> None:
    """Raise unless lowest <= low <= high <= highest."""
    if not lowest <= low <= high <= highest:
        raise InvalidTransformParameter(
            f"{name} range {low}..{high} is not allowed; both ends must lie in "
            f"{lowest}..{highest} with the first <= the second"
        )


def mirror(image: Image.Image, rng: RandomSource | None = None) -> Image.Image:
    """Left-right flip (deterministic: `rng` is accepted for a uniform signature)."""
    return ImageOps.mirror(_rgb(image))


def random_crop(
    image: Image.Image, rng: RandomSource, min_frac: float = 0.5, max_frac: float = 0.9
) -> Image.Image:
    """A crop whose width and height are each a random fraction of the original's."""
    _check_range("crop fraction", min_frac, max_frac, 0.01, 1.0)
    gen = _generator(rng)
    width, height = image.size
    crop_w = max(1, round(width * gen.uniform(min_frac, max_frac)))
    crop_h = max(1, round(height * gen.uniform(min_frac, max_frac)))
    left = int(gen.integers(0, width - crop_w + 1))
    top = int(gen.integers(0, height - crop_h + 1))
    return _rgb(image).crop((left, top, left + crop_w, top + crop_h))


def rotate(image: Image.Image, rng: RandomSource, max_degrees: float = 20.0) -> Image.Image:
    """Rotation by a random angle in [-max_degrees, max_degrees], same size, black corners."""
    _check_range("rotation", 0.0, max_degrees, 0.0, 180.0)
    angle = _generator(rng).uniform(-max_degrees, max_degrees)
    return _rgb(image).rotate(angle, resample=Image.Resampling.BICUBIC)


def shear(image: Image.Image, rng: RandomSource, max_shear: float = 0.3) -> Image.Image:
    """Horizontal and vertical shear about the centre by random factors in [-max, max]."""
    _check_range("shear", 0.0, max_shear, 0.0, 1.0)
    gen = _generator(rng)
    sx, sy = gen.uniform(-max_shear, max_shear, size=2)
    cx, cy = image.width / 2, image.height / 2
    coefficients = (1.0, sx, -sx * cy, sy, 1.0, -sy * cx)
    return _rgb(image).transform(
        image.size, Image.Transform.AFFINE, coefficients, resample=Image.Resampling.BILINEAR
    )


def local_warp(image: Image.Image, rng: RandomSource, strength: float = 0.04) -> Image.Image:
    """A smooth elastic warp: inner vertices of a 4x4 mesh move by up to strength * short side.

    The border stays in place, so the warp bends the content without exposing empty areas.
    """
    _check_range("warp strength", 0.0, strength, 0.0, 0.5 / _WARP_CELLS - 1e-3)
    gen = _generator(rng)
    width, height = image.size
    xs, ys = np.linspace(0, width, _WARP_CELLS + 1), np.linspace(0, height, _WARP_CELLS + 1)
    grid = np.stack(np.meshgrid(xs, ys, indexing="xy"), axis=-1)
    shift = gen.uniform(-1, 1, size=grid.shape) * strength * min(width, height)
    shift[[0, -1], :, :] = 0
    shift[:, [0, -1], :] = 0
    source = grid + shift
    mesh = []
    for row in range(_WARP_CELLS):
        for col in range(_WARP_CELLS):
            box = (round(xs[col]), round(ys[row]), round(xs[col + 1]), round(ys[row + 1]))
            corners = (
                source[row, col],
                source[row + 1, col],
                source[row + 1, col + 1],
                source[row, col + 1],
            )
            mesh.append((box, tuple(float(v) for corner in corners for v in corner)))
    return _rgb(image).transform(
        image.size, Image.Transform.MESH, mesh, resample=Image.Resampling.BILINEAR
    )


def _shift_hue(image: Image.Image, shift: float) -> Image.Image:
    """Rotate every pixel's hue by `shift` turns (-0.5..0.5)."""
    hue, saturation, value = image.convert("HSV").split()
    turned = (np.asarray(hue, dtype=np.int16) + round(shift * 256)) % 256
    hsv = Image.merge("HSV", (Image.fromarray(turned.astype(np.uint8)), saturation, value))
    return hsv.convert("RGB")


def colour_shift(
    image: Image.Image,
    rng: RandomSource,
    brightness: float = 0.3,
    contrast: float = 0.3,
    saturation: float = 0.3,
    hue: float = 0.05,
) -> Image.Image:
    """Colour jitter: brightness, contrast and saturation scaled by 1 +- x, hue turned by +- hue."""
    for name, amount in (
        ("brightness", brightness),
        ("contrast", contrast),
        ("saturation", saturation),
    ):
        _check_range(name, 0.0, amount, 0.0, 1.0)
    _check_range("hue", 0.0, hue, 0.0, 0.5)
    gen = _generator(rng)
    out = _rgb(image)
    for enhancer, amount in (
        (ImageEnhance.Brightness, brightness),
        (ImageEnhance.Contrast, contrast),
        (ImageEnhance.Color, saturation),
    ):
        out = enhancer(out).enhance(1.0 + gen.uniform(-amount, amount))
    return _shift_hue(out, gen.uniform(-hue, hue))


def blur(
    image: Image.Image, rng: RandomSource, min_radius: float = 0.5, max_radius: float = 2.5
) -> Image.Image:
    """Gaussian blur with a random radius in pixels."""
    _check_range("blur radius", min_radius, max_radius, 0.0, 100.0)
    radius = _generator(rng).uniform(min_radius, max_radius)
    return _rgb(image).filter(ImageFilter.GaussianBlur(radius))


def jpeg(
    image: Image.Image, rng: RandomSource, min_quality: int = 15, max_quality: int = 50
) -> Image.Image:
    """A JPEG re-encoding at a random quality: blocking and ringing artefacts."""
    _check_range("JPEG quality", min_quality, max_quality, 1, 95)
    quality = int(_generator(rng).integers(min_quality, max_quality + 1))
    buffer = io.BytesIO()
    _rgb(image).save(buffer, format="JPEG", quality=quality)
    with Image.open(io.BytesIO(buffer.getvalue())) as decoded:
        return decoded.convert("RGB")


def downscale(
    image: Image.Image, rng: RandomSource | None = None, *, factor: int = 4
) -> Image.Image:
    """The image shrunk by an integer `factor` (a thumbnail-like copy; `rng` is unused)."""
    if factor < 1:
        raise InvalidTransformParameter(f"downscale factor {factor} is not allowed; use >= 1")
    size = (max(1, image.width // factor), max(1, image.height // factor))
    return _rgb(image).resize(size, Image.Resampling.BOX)


def overlay_text(image: Image.Image, rng: RandomSource) -> Image.Image:
    """A short random caption in a random colour at a random place (Pillow's built-in font)."""
    gen = _generator(rng)
    out = _rgb(image)
    text = "".join(gen.choice(list(_TEXT_ALPHABET), size=int(gen.integers(5, 11))))
    font = ImageFont.load_default(size=max(8, out.height // 12))
    draw = ImageDraw.Draw(out)
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    x = int(gen.integers(0, max(1, int(out.width - (right - left)))))
    y = int(gen.integers(0, max(1, int(out.height - (bottom - top)))))
    colour = tuple(int(c) for c in gen.integers(0, 256, size=3))
    draw.text((x - left, y - top), text, fill=colour, font=font)
    return out


TRANSFORMS: dict[str, Callable[[Image.Image, np.random.Generator], Image.Image]] = {
    "mirror": mirror,
    "random_crop": random_crop,
    "rotate": rotate,
    "shear": shear,
    "local_warp": local_warp,
    "colour_shift": colour_shift,
    "blur": blur,
    "jpeg": jpeg,
    "downscale": downscale,
    "overlay_text": overlay_text,
}


def near_duplicate_variants(
    image: Image.Image, rng: RandomSource, names: Sequence[str] | None = None
) -> list[tuple[str, Image.Image]]:
    """One variant of `image` per transform name (default: all of TRANSFORMS, in its order)."""
    chosen = list(TRANSFORMS) if names is None else list(names)
    unknown = [name for name in chosen if name not in TRANSFORMS]
    if unknown:
        raise UnknownTransform(
            f"unknown transform '{unknown[0]}'; available: {', '.join(TRANSFORMS)}"
        )
    gen = _generator(rng)
    return [(name, TRANSFORMS[name](image, gen)) for name in chosen]
