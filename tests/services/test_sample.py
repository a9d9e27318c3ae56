"""The sample collection: bundled photos, Fashion-MNIST from Debian, an idempotent build."""

from __future__ import annotations

import gzip
import hashlib
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lookalike.services.sample import (
    FASHION_MNIST_CLASSES,
    build_sample,
    bundled_photos,
    fashion_mnist,
)


def test_bundled_photos_are_many_distinct_rgb_photos_in_name_order() -> None:
    photos = bundled_photos()
    names = [photo.name for photo in photos]
    assert len(photos) >= 15
    assert names == sorted(set(names))
    assert {"astronaut", "coffee", "camera", "china", "flower", "grace_hopper"} <= set(names)
    assert all(photo.image.mode == "RGB" and min(photo.image.size) >= 100 for photo in photos)
    digests = {hashlib.sha256(photo.image.tobytes()).hexdigest() for photo in photos}
    assert len(digests) == len(photos)


def test_bundled_grayscale_photo_becomes_gray_rgb() -> None:
    camera = next(photo for photo in bundled_photos() if photo.name == "camera")
    pixels = np.asarray(camera.image)
    assert camera.image.size == (512, 512)
    assert np.array_equal(pixels[..., 0], pixels[..., 2])
    assert pixels.std() > 30


def test_bundled_colour_photo_matches_scikit_image() -> None:
    from skimage import data

    coffee = next(photo for photo in bundled_photos() if photo.name == "coffee")
    assert np.array_equal(np.asarray(coffee.image), data.coffee())


@pytest.mark.parametrize(("split", "count"), [("train", 60000), ("test", 10000)])
def test_fashion_mnist_splits_have_the_published_sizes(split: str, count: int) -> None:
    images, labels = fashion_mnist(split=split)
    assert images.shape == (count, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (count,) and labels.dtype == np.int64
    assert np.array_equal(np.bincount(labels), [count // 10] * 10)
    assert images.max() == 255 and images.min() == 0


def test_fashion_mnist_labels_start_as_published() -> None:
    assert fashion_mnist(split="train", limit=10)[1].tolist() == [9, 0, 0, 3, 0, 2, 7, 2, 5, 5]
    assert fashion_mnist(split="test", limit=10)[1].tolist() == [9, 2, 1, 1, 6, 1, 4, 6, 5, 7]


def test_fashion_mnist_limit_reads_a_prefix() -> None:
    head, head_labels = fashion_mnist(split="test", limit=25)
    everything, labels = fashion_mnist(split="test")
    assert np.array_equal(head, everything[:25]) and np.array_equal(head_labels, labels[:25])
    assert fashion_mnist(split="test", limit=0)[0].shape == (0, 28, 28)


def test_fashion_mnist_classes_are_ten_folder_safe_names() -> None:
    assert len(FASHION_MNIST_CLASSES) == len(set(FASHION_MNIST_CLASSES)) == 10
    assert FASHION_MNIST_CLASSES[1] == "trouser" and FASHION_MNIST_CLASSES[9] == "ankle-boot"
    assert all("/" not in name for name in FASHION_MNIST_CLASSES)


def test_fashion_mnist_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="unknown Fashion-MNIST split 'validation'"):
        fashion_mnist(split="validation")
    with pytest.raises(ValueError, match="limit"):
        fashion_mnist(limit=-1)


def test_missing_fashion_mnist_says_how_to_install_it(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        fashion_mnist(root=tmp_path)


def test_a_file_that_is_not_idx_is_refused(tmp_path: Path) -> None:
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        with gzip.open(tmp_path / name, "wb") as out:
            out.write(struct.pack(">I", 0x89504E47) + bytes(64))
    with pytest.raises(ValueError, match="not an idx file"):
        fashion_mnist(split="test", root=tmp_path)


def test_a_truncated_idx_file_is_refused(tmp_path: Path) -> None:
    with gzip.open(tmp_path / "t10k-images-idx3-ubyte.gz", "wb") as out:
        out.write(struct.pack(">HBBIII", 0, 8, 3, 10, 28, 28) + bytes(28 * 28 * 3))
    with pytest.raises(ValueError, match="truncated"):
        fashion_mnist(split="test", root=tmp_path)


def _files(directory: Path) -> dict[Path, int]:
    return {path: path.stat().st_mtime_ns for path in directory.rglob("*") if path.is_file()}


def test_build_sample_writes_photos_and_fashion_by_class(tmp_path: Path) -> None:
    summary = build_sample(tmp_path, fashion_per_class=3)
    photos = sorted((tmp_path / "photos").iterdir())
    assert [path.stem for path in photos] == [photo.name for photo in bundled_photos()]
    assert summary.photos_written == len(photos) and summary.fashion_written == 30
    with Image.open(tmp_path / "photos" / "chelsea.jpg") as chelsea:
        assert (chelsea.format, chelsea.mode, chelsea.size) == ("JPEG", "RGB", (451, 300))

    images, labels = fashion_mnist(split="train", limit=100)
    for label, name in enumerate(FASHION_MNIST_CLASSES):
        files = sorted((tmp_path / "fashion-mnist" / name).iterdir())
        expected = np.flatnonzero(labels == label)[:3]
        assert [path.name for path in files] == [f"train-{index:05d}.png" for index in expected]
        with Image.open(files[0]) as first:
            assert first.mode == "L" and np.array_equal(np.asarray(first), images[expected[0]])


def test_build_sample_is_idempotent(tmp_path: Path) -> None:
    first = build_sample(tmp_path, fashion_per_class=2)
    before = _files(tmp_path)
    second = build_sample(tmp_path, fashion_per_class=2)
    assert _files(tmp_path) == before
    assert (second.photos_written, second.fashion_written) == (0, 0)
    assert second.photos_existing == first.photos_written
    assert second.fashion_existing == first.fashion_written == 20


def test_build_sample_completes_an_interrupted_build(tmp_path: Path) -> None:
    build_sample(tmp_path, fashion_per_class=2)
    lost = tmp_path / "photos" / "rocket.jpg"
    lost.unlink()
    (lost.parent / ".rocket.jpg.k2j4.tmp").write_bytes(b"\xff\xd8 half a jpeg")
    before = _files(tmp_path)
    summary = build_sample(tmp_path, fashion_per_class=2)
    assert summary.photos_written == 1 and summary.fashion_written == 0
    after = _files(tmp_path)
    assert {path for path in after if after[path] != before.get(path)} == {lost}
    with Image.open(lost) as rocket:
        assert rocket.size == (640, 427)


def test_build_sample_leaves_no_temporary_files(tmp_path: Path) -> None:
    build_sample(tmp_path, fashion_per_class=1)
    assert not [path for path in tmp_path.rglob("*") if path.name.startswith(".")]


def test_build_sample_reports_progress_up_to_the_total(tmp_path: Path) -> None:
    calls: list[tuple[int, int]] = []
    build_sample(
        tmp_path, fashion_per_class=1, progress=lambda done, total: calls.append((done, total))
    )
    total = len(bundled_photos()) + 10
    assert calls == [(done, total) for done in range(1, total + 1)]


def test_build_sample_without_fashion_writes_only_photos(tmp_path: Path) -> None:
    summary = build_sample(tmp_path, fashion_per_class=0)
    assert summary.fashion_written == summary.fashion_existing == 0
    assert not (tmp_path / "fashion-mnist").exists()
    with pytest.raises(ValueError, match="fashion_per_class"):
        build_sample(tmp_path, fashion_per_class=-1)
