"""Builders of catalog inputs for the tests: image rows, spaces and float32 vectors."""

from __future__ import annotations

import hashlib

import numpy as np
from sqlalchemy.orm import Session

from lookalike.services.catalog.images import add_image
from lookalike.services.catalog.models import Image, Space
from lookalike.services.catalog.schemas import ImageCreate, SpaceCreate
from lookalike.services.catalog.spaces import create_space

DIM = 8


def image_data(key: str, **fields: object) -> ImageCreate:
    """An image row whose sha256 is that of the bytes `key` names."""
    payload = f"image bytes {key}".encode()
    return ImageCreate(
        sha256=hashlib.sha256(payload).hexdigest(),
        source_uri=f"file:///photos/{key}.png",
        byte_size=len(payload),
        **fields,
    )


def add_images(session: Session, count: int, prefix: str = "img") -> list[Image]:
    """`count` new images, flushed (ids assigned)."""
    return [add_image(session=session, data=image_data(f"{prefix}{i}"))[0] for i in range(count)]


def space(session: Session, name: str = "mobilenet", dim: int = DIM) -> Space:
    """A new space of dimension `dim`."""
    data = SpaceCreate(name=name, backbone="mobilenet_v2", layer="features", pooling="gem", dim=dim)
    return create_space(session=session, data=data)


def vectors(count: int, dim: int = DIM, seed: int = 0) -> list[bytes]:
    """`count` L2-normalised float32 little-endian vectors, seeded."""
    rows = np.random.default_rng(seed).standard_normal((count, dim)).astype("<f4")
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    return [row.tobytes() for row in rows]
