"""Synthetic catalog content for benchmarks and fault tests: image rows with random unit
vectors, written in bulk through the catalog functions (no files, no model), so that a space
can hold a million vectors in minutes."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from lookalike.services.catalog import embeddings as embedding_queries
from lookalike.services.catalog import images as image_queries
from lookalike.services.catalog.schemas import ImageCreate
from lookalike.services.runtime import Runtime

SYNTHETIC_COLLECTION = "synthetic"


@dataclass(frozen=True)
class SyntheticBatch:
    """One committed batch: catalog ids (int64) and their vectors (float32, unit rows)."""

    ids: np.ndarray
    vectors: np.ndarray


def random_unit_vectors(rng: np.random.Generator, count: int, dim: int) -> np.ndarray:
    """(count, dim) float32 Gaussian vectors scaled to unit length."""
    vectors = rng.standard_normal((count, dim), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors


def _rows(seed: int, start: int, stop: int) -> list[ImageCreate]:
    """Image rows whose sha256 is that of their name, unique per (seed, position)."""
    rows = []
    for i in range(start, stop):
        name = f"synthetic://{seed}/{i}"
        rows.append(ImageCreate(sha256=hashlib.sha256(name.encode()).hexdigest(),
                                source_uri=name, collection=SYNTHETIC_COLLECTION))
    return rows


def add_synthetic_images(runtime: Runtime, *, space_id: int, dim: int, count: int,
                         seed: int = 0, batch: int = 10_000) -> Iterator[SyntheticBatch]:
    """Add `count` image rows with random unit vectors to a space, one transaction per
    `batch`; yields each batch once committed. The same seed gives the same images again
    (then reported as existing, with new vectors), another seed gives new ones."""
    if count < 0 or batch < 1:
        raise ValueError(f"count must be >= 0 and batch >= 1; got count {count}, batch {batch}")
    rng = np.random.default_rng(seed)
    for start in range(0, count, batch):
        rows = _rows(seed, start, min(start + batch, count))
        vectors = random_unit_vectors(rng, len(rows), dim)
        with runtime.session() as session:
            found = image_queries.add_images(session=session, rows=rows)
            ids = [found[row.sha256][0] for row in rows]
            blobs = [row.tobytes() for row in vectors.astype("<f4", copy=False)]
            embedding_queries.add_embeddings(session=session, space_id=space_id, image_ids=ids,
                                             vectors=blobs)
            session.commit()
        yield SyntheticBatch(np.array(ids, dtype=np.int64), vectors)
