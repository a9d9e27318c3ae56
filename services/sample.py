"""The demo and test collection: real photos shipped inside Python packages, and Fashion-MNIST."""

from __future__ import annotations

import gzip
import importlib.util
import io
import logging
import math
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from lookalike.retrieval import atomic

logger = logging.getLogger(__name__)

FASHION_MNIST_ROOT = Path("/usr/share/datasets/fashion-mnist")
# OpenCV's sample data (clips, digits.png) as `make system-deps` unpacks it from opencv-doc
OPENCV_DATA = Path("/var/cache/lookalike/opencv-doc")
FASHION_MNIST_CLASSES: tuple[str, ...] = (
    "t-shirt-top",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle-boot",
)
_FASHION_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
_IDX_UBYTE = 0x08

# (name, package, file inside the package): photos that ship in the wheels, so nothing is
# fetched. Grayscale ones (camera, moon, ...) are real photos too and become RGB.
_PHOTO_FILES: tuple[tuple[str, str, str], ...] = (
    ("astronaut", "skimage", "data/astronaut.png"),
    ("brick", "skimage", "data/brick.png"),
    ("camera", "skimage", "data/camera.png"),
    ("cell", "skimage", "data/cell.png"),
    ("chelsea", "skimage", "data/chelsea.png"),
    ("china", "sklearn", "datasets/images/china.jpg"),
    ("clock", "skimage", "data/clock_motion.png"),
    ("coffee", "skimage", "data/coffee.png"),
    ("coins", "skimage", "data/coins.png"),
    ("flower", "sklearn", "datasets/images/flower.jpg"),
    ("grace_hopper", "matplotlib", "mpl-data/sample_data/grace_hopper.jpg"),
    ("grass", "skimage", "data/grass.png"),
    ("gravel", "skimage", "data/gravel.png"),
    ("hubble_deep_field", "skimage", "data/hubble_deep_field.jpg"),
    ("immunohistochemistry", "skimage", "data/ihc.png"),
    ("microaneurysms", "skimage", "data/microaneurysms.png"),
    ("moon", "skimage", "data/moon.png"),
    ("motorcycle_left", "skimage", "data/motorcycle_left.png"),
    ("motorcycle_right", "skimage", "data/motorcycle_right.png"),
    ("page", "skimage", "data/page.png"),
    ("retina", "skimage", "data/retina.jpg"),
    ("rocket", "skimage", "data/rocket.jpg"),
    ("text", "skimage", "data/text.png"),
)


@dataclass(frozen=True)
class SamplePhoto:
    """One bundled photo, decoded to RGB."""

    name: str
    image: Image.Image


@dataclass(frozen=True)
class SampleSummary:
    """What build_sample wrote and what it found already in place."""

    directory: Path
    photos_written: int
    photos_existing: int
    fashion_written: int
    fashion_existing: int


def bundled_photos() -> list[SamplePhoto]:
    """Every bundled photo whose package is installed, as RGB, sorted by name."""
    return [SamplePhoto(name, _load_rgb(path)) for name, path in _photo_paths()]


def fashion_mnist(
    *, split: str = "train", limit: int | None = None, root: Path = FASHION_MNIST_ROOT
) -> tuple[np.ndarray, np.ndarray]:
    """The first `limit` (default all) images (N, 28, 28) uint8 and labels int64 of a split."""
    if split not in _FASHION_FILES:
        raise ValueError(f"unknown Fashion-MNIST split {split!r}; available: train, test")
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be None or a count >= 0, got {limit}")
    images_file, labels_file = _FASHION_FILES[split]
    images = _read_idx(_fashion_file(root, images_file), limit=limit)
    labels = _read_idx(_fashion_file(root, labels_file), limit=limit).astype(np.int64)
    if len(images) != len(labels) or images.shape[1:] != (28, 28):
        raise ValueError(
            f"Fashion-MNIST {split} files in {root} disagree: images {images.shape}, "
            f"labels {labels.shape}"
        )
    return images, labels


def build_sample(
    directory: Path,
    *,
    fashion_per_class: int = 300,
    progress: Callable[[int, int], None] | None = None,
) -> SampleSummary:
    """Write photos/<name>.jpg and fashion-mnist/<class>/train-<index>.png; skip existing files.

    Every file is written to a temporary name and renamed, so an interrupted build leaves only
    whole files and the next run completes it.
    """
    if fashion_per_class < 0:
        raise ValueError(f"fashion_per_class must be >= 0, got {fashion_per_class}")
    photos = [(directory / "photos" / f"{name}.jpg", path) for name, path in _photo_paths()]
    fashion = _fashion_targets(directory / "fashion-mnist", fashion_per_class)
    report = _Progress(len(photos) + len(fashion), progress)
    photos_written = 0
    for target, source in photos:
        if not target.exists():
            _write_atomic(target, _jpeg(_load_rgb(source)))
            photos_written += 1
        report.step()
    fashion_written = _write_fashion(fashion, report)
    summary = SampleSummary(
        directory,
        photos_written,
        len(photos) - photos_written,
        fashion_written,
        len(fashion) - fashion_written,
    )
    logger.info("sample collection in %s: %s", directory, summary)
    return summary


class _Progress:
    """Counts finished files and tells the caller's callback (done, total)."""

    def __init__(self, total: int, callback: Callable[[int, int], None] | None) -> None:
        self.total, self.done, self.callback = total, 0, callback

    def step(self) -> None:
        self.done += 1
        if self.callback is not None:
            self.callback(self.done, self.total)


def _photo_paths() -> list[tuple[str, Path]]:
    """(name, file) of each bundled photo present on disk; packages are located, not imported."""
    found = []
    for name, package, relative in _PHOTO_FILES:
        spec = importlib.util.find_spec(package)
        locations = spec.submodule_search_locations if spec is not None else None
        path = Path(next(iter(locations))) / relative if locations else None
        if path is not None and path.is_file():
            found.append((name, path))
        else:
            logger.debug("sample photo %s skipped: %s/%s not installed", name, package, relative)
    return found


def _load_rgb(path: Path) -> Image.Image:
    with Image.open(path) as image:
        return image.convert("RGB")


def _jpeg(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=92)
    return buffer.getvalue()


def _png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def _write_atomic(path: Path, payload: bytes) -> None:
    atomic.write_atomic(path, lambda handle: handle.write(payload))


def _fashion_targets(root: Path, per_class: int) -> list[tuple[Path, int]]:
    """(file, train index) of the first `per_class` training images of every class."""
    if per_class == 0:
        return []
    labels = _read_idx(_fashion_file(FASHION_MNIST_ROOT, _FASHION_FILES["train"][1]), limit=None)
    targets = []
    for label, name in enumerate(FASHION_MNIST_CLASSES):
        for index in np.flatnonzero(labels == label)[:per_class]:
            targets.append((root / name / f"train-{index:05d}.png", int(index)))
    return targets


def _write_fashion(targets: list[tuple[Path, int]], report: _Progress) -> int:
    """Write the missing Fashion-MNIST files; the idx file is read only as far as needed."""
    missing = [(path, index) for path, index in targets if not path.exists()]
    for _ in range(len(targets) - len(missing)):
        report.step()
    if not missing:
        return 0
    images, _ = fashion_mnist(split="train", limit=max(index for _, index in missing) + 1)
    for path, index in missing:
        _write_atomic(path, _png(images[index]))
        report.step()
    return len(missing)


def _fashion_file(root: Path, name: str) -> Path:
    path = root / name
    if not path.is_file():
        raise FileNotFoundError(
            f"Fashion-MNIST file {path} not found; install the dataset with "
            "`apt-get install dataset-fashion-mnist` (or pass the directory holding its .gz files)"
        )
    return path


def _read_idx(path: Path, *, limit: int | None) -> np.ndarray:
    """The first `limit` items of a gzipped idx file of unsigned bytes (big-endian header)."""
    with gzip.open(path, "rb") as stream:
        zeros, kind, ndim = struct.unpack(">HBB", stream.read(4))
        if zeros != 0 or kind != _IDX_UBYTE or ndim == 0:
            raise ValueError(f"{path} is not an idx file of unsigned bytes")
        dims = struct.unpack(f">{ndim}I", stream.read(4 * ndim))
        count = dims[0] if limit is None else min(limit, dims[0])
        body = stream.read(count * math.prod(dims[1:]))
    if len(body) != count * math.prod(dims[1:]):
        raise ValueError(f"{path} is truncated: expected {count} items of shape {dims[1:]}")
    return np.frombuffer(body, dtype=np.uint8).reshape(count, *dims[1:])
