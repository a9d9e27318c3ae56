"""Retrieval on real images: each bundled photo, transformed, still finds its original first."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image, ImageOps

from lookalike.services.catalog import embeddings as embedding_queries
from lookalike.services.catalog import images as image_queries
from lookalike.services.config import Settings
from lookalike.services.search.query import search_vector
from lookalike.services.setup import open_runtime
from lookalike.services.spaces.lookup import find_space

pytestmark = pytest.mark.slow


def mirrored(image: Image.Image) -> Image.Image:
    return ImageOps.mirror(image)


def cropped(image: Image.Image) -> Image.Image:
    """The central 80% of the photo."""
    w, h = image.size
    return image.crop((w // 10, h // 10, w - w // 10, h - h // 10))


def rotated(image: Image.Image) -> Image.Image:
    return image.rotate(10, resample=Image.Resampling.BICUBIC, expand=False)


def recompressed(image: Image.Image) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=30)
    return Image.open(io.BytesIO(buffer.getvalue()))


TRANSFORMS: dict[str, Callable[[Image.Image], Image.Image]] = {
    "mirror": mirrored, "crop80": cropped, "rotate10": rotated, "jpeg30": recompressed}


def as_jpeg(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


def test_transformed_photos_find_their_original_among_thousands(
        sample_home: tuple[Settings, Path]) -> None:
    settings, data = sample_home
    runtime = open_runtime(settings)
    photos = sorted((data / "photos").glob("*.jpg"))
    misses = []
    trials = 0
    for path in photos:
        original = Image.open(path)
        for name, transform in TRANSFORMS.items():
            result = search_vector(runtime, space_name=None, k=1,
                                   query=as_jpeg(transform(original)))
            trials += 1
            if result.results[0].source != str(path.resolve()):
                misses.append(f"{path.stem}/{name} -> {result.results[0].source}")
    with runtime.session() as session:
        gallery = image_queries.count_images(session=session, status="embedded")
    runtime.close()
    assert gallery >= 3000
    assert len(photos) >= 15
    assert 1 - len(misses) / trials >= 0.95, misses


def test_every_sample_image_finds_itself_first(sample_home: tuple[Settings, Path]) -> None:
    """Searching by each catalogued id returns that image at rank 1 (exact duplicates in
    Fashion-MNIST aside, which tie at score 1)."""
    settings, _ = sample_home
    runtime = open_runtime(settings)
    with runtime.session() as session:
        space = find_space(session=session, name=None)
        ids = sorted(embedding_queries.embedded_image_ids(session=session, space_id=space.id))
    failures = []
    for image_id in ids:
        top = search_vector(runtime, space_name=None, k=1, image_id=image_id).results[0]
        if top.image_id != image_id and top.score < 0.9999:
            failures.append(image_id)
    runtime.close()
    assert failures == []
