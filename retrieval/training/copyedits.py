"""Copy-detection edits: the harder changes people make to a picture before re-posting it.

Each edit takes a PIL image, a `numpy.random.Generator` and a strength in 0..1 (0: barely
changed, 1: as hard as the copy-detection literature trains on, e.g. a crop to 10-20 % of
the area) and returns a new RGB image. `CopyAugmenter` applies a plan of edits, each with its
own probability and strength, seeded: the same seed always gives the same view.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageOps

from lookalike.retrieval.errors import InvalidTransformParameter, UnknownTransform
from lookalike.retrieval.training import augment
from lookalike.retrieval.training.augment import RandomSource
from lookalike.retrieval.visualize import contact_sheet

__all__ = ["COPY_EDITS", "DEFAULT_PLAN", "CopyAugmenter", "Edit", "apply_edit", "augmentation_grid",
           "parse_plan"]

EditFn = Callable[[Image.Image, np.random.Generator, float], Image.Image]
_PERMUTATIONS = ((0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0))


def _colour(gen: np.random.Generator) -> tuple[int, int, int]:
    """A random RGB colour."""
    r, g, b = (int(c) for c in gen.integers(0, 256, size=3))
    return r, g, b


def heavy_crop(image: Image.Image, gen: np.random.Generator, strength: float) -> Image.Image:
    """A crop keeping 1 - strength * (0.8..0.9) of the area (10-20 % at strength 1)."""
    area = 1.0 - strength * gen.uniform(0.8, 0.9)
    aspect = float(np.exp(gen.uniform(np.log(3 / 4), np.log(4 / 3))))
    width, height = image.size
    crop_w = int(np.clip(round(width * np.sqrt(area * aspect)), 1, width))
    crop_h = int(np.clip(round(height * np.sqrt(area / aspect)), 1, height))
    left = int(gen.integers(0, width - crop_w + 1))
    top = int(gen.integers(0, height - crop_h + 1))
    return image.convert("RGB").crop((left, top, left + crop_w, top + crop_h))


def _paste_small(image: Image.Image, canvas: Image.Image, gen: np.random.Generator,
                 strength: float) -> Image.Image:
    """`image` shrunk to 1 - strength * (0.4..0.7) of the canvas side, pasted at random."""
    scale = 1.0 - strength * gen.uniform(0.4, 0.7)
    fit = min(canvas.width / image.width, canvas.height / image.height) * scale
    small = image.convert("RGB").resize((max(1, round(image.width * fit)),
                                         max(1, round(image.height * fit))),
                                        Image.Resampling.BILINEAR)
    left = int(gen.integers(0, canvas.width - small.width + 1))
    top = int(gen.integers(0, canvas.height - small.height + 1))
    canvas.paste(small, (left, top))
    return canvas


def paste_into_frame(image: Image.Image, gen: np.random.Generator,
                     strength: float) -> Image.Image:
    """The image pasted small into a plain frame of its own size (a screenshot-like copy)."""
    return _paste_small(image, Image.new("RGB", image.size, _colour(gen)), gen, strength)


def _scene(size: tuple[int, int], gen: np.random.Generator) -> Image.Image:
    """A stand-in 'other image': a smooth colour gradient with random rectangles."""
    width, height = size
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    start, end = gen.integers(0, 256, size=(2, 3))
    ramp = ((xs / max(1, width - 1) + ys / max(1, height - 1)) / 2)[..., None]
    canvas = Image.fromarray((start + (end - start) * ramp).astype(np.uint8))
    return overlay_shapes(canvas, gen, 1.0)


def paste_onto_image(image: Image.Image, gen: np.random.Generator, strength: float,
                     background: Image.Image | None = None) -> Image.Image:
    """The image pasted small onto another picture (`background`, else a generated scene)."""
    canvas = (background.convert("RGB").resize(image.size) if background is not None
              else _scene(image.size, gen))
    return _paste_small(image, canvas, gen, strength)


def overlay_text(image: Image.Image, gen: np.random.Generator, strength: float) -> Image.Image:
    """1 + 3 * strength random captions at random places."""
    out = image.convert("RGB")
    for _ in range(1 + round(3 * strength)):
        out = augment.overlay_text(out, gen)
    return out


def overlay_shapes(image: Image.Image, gen: np.random.Generator, strength: float) -> Image.Image:
    """1 + 5 * strength filled rectangles and ellipses, each up to 30 % of a side."""
    out = image.convert("RGB")
    draw = ImageDraw.Draw(out)
    for _ in range(1 + round(5 * strength)):
        w = max(1, round(out.width * gen.uniform(0.05, 0.3)))
        h = max(1, round(out.height * gen.uniform(0.05, 0.3)))
        x, y = int(gen.integers(0, out.width)), int(gen.integers(0, out.height))
        shape = draw.rectangle if gen.random() < 0.5 else draw.ellipse
        shape((x, y, x + w, y + h), fill=_colour(gen))
    return out


def flip(image: Image.Image, gen: np.random.Generator, strength: float) -> Image.Image:
    """A left-right flip, or (with probability strength / 2) a top-bottom one."""
    if gen.random() < strength / 2:
        return ImageOps.flip(image.convert("RGB"))
    return ImageOps.mirror(image.convert("RGB"))


def rotate90(image: Image.Image, gen: np.random.Generator, strength: float) -> Image.Image:
    """A quarter, half or three-quarter turn (strength is unused)."""
    turns = (Image.Transpose.ROTATE_90, Image.Transpose.ROTATE_180, Image.Transpose.ROTATE_270)
    return image.convert("RGB").transpose(turns[int(gen.integers(0, 3))])


def rotate(image: Image.Image, gen: np.random.Generator, strength: float) -> Image.Image:
    """A rotation by up to 30 * strength degrees, black corners."""
    return augment.rotate(image, gen, max_degrees=30.0 * strength)


def _perspective_coefficients(target: np.ndarray, source: np.ndarray) -> tuple[float, ...]:
    """PIL's 8 perspective coefficients mapping output corners `target` to input `source`."""
    rows = []
    for (x, y), (u, v) in zip(target, source, strict=True):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
    solution = np.linalg.solve(np.array(rows, dtype=np.float64), source.reshape(8))
    return tuple(float(c) for c in solution)


def perspective(image: Image.Image, gen: np.random.Generator, strength: float) -> Image.Image:
    """A perspective distortion: each corner moves inwards by up to 25 * strength % of a side."""
    width, height = image.size
    corners = np.array([[0, 0], [width, 0], [width, height], [0, height]], dtype=np.float64)
    inward = np.array([[1, 1], [-1, 1], [-1, -1], [1, -1]], dtype=np.float64)
    moved = corners + inward * gen.uniform(0, 0.25 * strength, size=(4, 2)) * [width, height]
    return image.convert("RGB").transform(
        image.size, Image.Transform.PERSPECTIVE, _perspective_coefficients(moved, corners),
        resample=Image.Resampling.BILINEAR)


def colour_jitter(image: Image.Image, gen: np.random.Generator, strength: float) -> Image.Image:
    """Brightness, contrast and saturation by 1 +- 0.6 * strength, hue by +- 0.2 * strength."""
    return augment.colour_shift(image, gen, brightness=0.6 * strength,
                                contrast=0.6 * strength, saturation=0.8 * strength,
                                hue=0.2 * strength)


def greyscale(image: Image.Image, gen: np.random.Generator, strength: float) -> Image.Image:
    """The image in grey, as RGB (`gen` and strength are unused)."""
    return image.convert("L").convert("RGB")


def channel_swap(image: Image.Image, gen: np.random.Generator, strength: float) -> Image.Image:
    """The RGB channels in a random non-identity order."""
    channels = image.convert("RGB").split()
    order = _PERMUTATIONS[int(gen.integers(0, len(_PERMUTATIONS)))]
    return Image.merge("RGB", tuple(channels[i] for i in order))


def blur(image: Image.Image, gen: np.random.Generator, strength: float) -> Image.Image:
    """A Gaussian blur of 0.5 to 0.5 + 4 * strength pixels."""
    return augment.blur(image, gen, min_radius=0.5, max_radius=0.5 + 4.0 * strength)


def noise(image: Image.Image, gen: np.random.Generator, strength: float) -> Image.Image:
    """Gaussian pixel noise, sigma 2 + 38 * strength grey levels."""
    pixels = np.asarray(image.convert("RGB"), dtype=np.float32)
    noisy = pixels + gen.normal(0.0, 2.0 + 38.0 * strength, size=pixels.shape)
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


def jpeg(image: Image.Image, gen: np.random.Generator, strength: float) -> Image.Image:
    """A JPEG re-encoding at quality 75 - 65 * strength (+0..20): 10-30 at strength 1."""
    low = max(1, round(75 - 65 * strength))
    return augment.jpeg(image, gen, min_quality=low, max_quality=min(95, low + 20))


def downscale(image: Image.Image, gen: np.random.Generator, strength: float) -> Image.Image:
    """The image shrunk by 1 + (0..7) * strength per side (a low-resolution copy)."""
    factor = 1.0 + gen.uniform(0.5, 1.0) * 7.0 * strength
    size = (max(8, round(image.width / factor)), max(8, round(image.height / factor)))
    return image.convert("RGB").resize(size, Image.Resampling.BOX)


def padding(image: Image.Image, gen: np.random.Generator, strength: float) -> Image.Image:
    """Borders of a random colour, each up to 30 * strength % of its side."""
    width, height = image.size
    left, right = (int(v) for v in gen.uniform(0, 0.3 * strength, size=2) * width)
    top, bottom = (int(v) for v in gen.uniform(0, 0.3 * strength, size=2) * height)
    return ImageOps.expand(image.convert("RGB"), (left, top, right, bottom), fill=_colour(gen))


COPY_EDITS: dict[str, EditFn] = {
    "heavy_crop": heavy_crop,
    "flip": flip,
    "rotate90": rotate90,
    "rotate": rotate,
    "perspective": perspective,
    "padding": padding,
    "paste_into_frame": paste_into_frame,
    "paste_onto_image": paste_onto_image,
    "colour_jitter": colour_jitter,
    "greyscale": greyscale,
    "channel_swap": channel_swap,
    "overlay_text": overlay_text,
    "overlay_shapes": overlay_shapes,
    "blur": blur,
    "noise": noise,
    "downscale": downscale,
    "jpeg": jpeg,
}


@dataclass(frozen=True)
class Edit:
    """One step of a plan: apply edit `name` with `probability`, at `strength` (0..1)."""

    name: str
    probability: float
    strength: float

    def __post_init__(self) -> None:
        if self.name not in COPY_EDITS:
            raise UnknownTransform(f"unknown copy edit '{self.name}'; available: "
                                   f"{', '.join(COPY_EDITS)}")
        for what, value in (("probability", self.probability), ("strength", self.strength)):
            if not 0.0 <= value <= 1.0:
                raise InvalidTransformParameter(
                    f"{what} {value} of copy edit '{self.name}' is not allowed; use 0..1")


DEFAULT_PLAN: tuple[Edit, ...] = (
    Edit("heavy_crop", 0.5, 1.0), Edit("flip", 0.3, 0.5), Edit("rotate90", 0.05, 1.0),
    Edit("rotate", 0.2, 0.7), Edit("perspective", 0.2, 0.8), Edit("padding", 0.1, 0.7),
    Edit("paste_into_frame", 0.1, 0.8), Edit("paste_onto_image", 0.1, 0.8),
    Edit("colour_jitter", 0.6, 0.8), Edit("greyscale", 0.15, 1.0),
    Edit("channel_swap", 0.05, 1.0), Edit("overlay_text", 0.2, 0.7),
    Edit("overlay_shapes", 0.15, 0.6), Edit("blur", 0.2, 0.6), Edit("noise", 0.15, 0.5),
    Edit("downscale", 0.2, 0.7), Edit("jpeg", 0.4, 0.8),
)


def parse_plan(specs: Sequence[str]) -> tuple[Edit, ...]:
    """Edits from 'name' or 'name:probability:strength' strings (defaults: 1.0 and 0.7)."""
    edits = []
    for spec in specs:
        name, *numbers = spec.split(":")
        if len(numbers) not in (0, 2):
            raise InvalidTransformParameter(
                f"copy edit '{spec}' is not 'name' or 'name:probability:strength'")
        try:
            probability, strength = (float(v) for v in numbers) if numbers else (1.0, 0.7)
        except ValueError:
            raise InvalidTransformParameter(
                f"copy edit '{spec}' has a probability or strength that is not a number") from None
        edits.append(Edit(name, probability, strength))
    return tuple(edits)


def _generator(rng: RandomSource) -> np.random.Generator:
    """`rng` itself, or a generator seeded with it."""
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def apply_edit(image: Image.Image, name: str, rng: RandomSource, strength: float = 0.7,
               background: Image.Image | None = None) -> Image.Image:
    """One named edit at `strength` (always applied); `background` feeds paste_onto_image."""
    edit = Edit(name, 1.0, strength)
    gen = _generator(rng)
    if edit.name == "paste_onto_image":
        return paste_onto_image(image, gen, strength, background)
    return COPY_EDITS[edit.name](image, gen, strength)


class CopyAugmenter:
    """Applies a plan's edits in order, each with its probability; seeded per call."""

    def __init__(self, plan: Sequence[Edit] = DEFAULT_PLAN, *,
                 backgrounds: Sequence[Image.Image] = ()) -> None:
        self.plan = tuple(plan)
        self.backgrounds = list(backgrounds)

    def __call__(self, image: Image.Image, rng: RandomSource) -> Image.Image:
        """One strongly edited view of `image`; the same seed gives the same view."""
        return self.view(image, rng)[0]

    def view(self, image: Image.Image, rng: RandomSource) -> tuple[Image.Image, list[str]]:
        """An edited view and the names of the edits applied to it, in order."""
        gen = _generator(rng)
        out, names = image.convert("RGB"), []
        for edit in self.plan:
            if gen.random() >= edit.probability:
                continue
            background = None
            if self.backgrounds and edit.name == "paste_onto_image":
                background = self.backgrounds[int(gen.integers(0, len(self.backgrounds)))]
            out = apply_edit(out, edit.name, gen, edit.strength, background)
            names.append(edit.name)
        return out, names


def augmentation_grid(images: Sequence[Image.Image], augmenter: CopyAugmenter, *, seed: int,
                      views: int = 5, tile: int = 96) -> Image.Image:
    """A sheet with one row per image: the original, then `views` seeded edited views."""
    gen = np.random.default_rng(seed)
    tiles = []
    for image in images:
        tiles.append(image)
        tiles += [augmenter(image, gen) for _ in range(views)]
    return contact_sheet(tiles, tile=tile, columns=views + 1)
