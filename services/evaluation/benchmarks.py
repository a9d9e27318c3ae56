"""The evaluation benchmarks as query and gallery vectors with their ground truth.

Each builder embeds its images with the space's embedder (so pooling, scales and whitening
apply), except `labels`, which reads the vectors a space already holds in the catalog.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from lookalike.retrieval.embedding.embedder import Embedder
from lookalike.retrieval.evaluation.groundtruth import (
    load_holidays,
    load_revisited,
    revisited_protocol,
)
from lookalike.retrieval.evaluation.metrics import LabelRelevance
from lookalike.retrieval.training.augment import near_duplicate_variants
from lookalike.services.catalog import embeddings as embedding_queries
from lookalike.services.catalog import images as image_queries
from lookalike.services.catalog.models import Space
from lookalike.services.errors import InvalidRequest
from lookalike.services.index.replicas import vectors_from_bytes
from lookalike.services.runtime import Runtime
from lookalike.services.sample import bundled_photos, fashion_mnist

BENCHMARKS = ("labels", "fashion-mnist", "near-duplicates", "roxford5k", "rparis6k", "holidays")
NEAR_DUPLICATE_SEED = 20240
_CHUNK = 64


@dataclass
class Benchmark:
    """Queries against a gallery; relevance by labels or per-query sets (with junk).

    With `leave_one_out` the queries are the gallery: query i never ranks gallery row i.
    """

    name: str
    queries: np.ndarray
    gallery: np.ndarray
    query_labels: np.ndarray | None = None
    gallery_labels: np.ndarray | None = None
    relevant: Sequence[set[int]] | None = None
    junk: Sequence[set[int]] | None = None
    leave_one_out: bool = False

    def block(self, start: int, stop: int):
        """(relevance, junk) of queries start..stop, as `score_rankings` takes them."""
        if self.query_labels is not None and self.gallery_labels is not None:
            labels = self.query_labels[start:stop]
            if not self.leave_one_out:
                return LabelRelevance(labels, self.gallery_labels), None
            matrix = labels[:, None] == self.gallery_labels[None, :]
            matrix[np.arange(stop - start), np.arange(start, stop)] = False
            return matrix, None
        assert self.relevant is not None
        junk = None if self.junk is None else list(self.junk[start:stop])
        return list(self.relevant[start:stop]), junk


def fashion_pixels(images: np.ndarray, size: int) -> torch.Tensor:
    """(N,28,28) uint8 grey images to (N,3,size,size) uint8 model input."""
    grey = torch.from_numpy(np.array(images, dtype=np.float32)).unsqueeze(1)
    resized = torch.nn.functional.interpolate(grey, size=(size, size), mode="bilinear",
                                              align_corners=False)
    return resized.round().clamp(0, 255).to(torch.uint8).expand(-1, 3, -1, -1).contiguous()


def embed_arrays(embedder: Embedder, images: np.ndarray) -> np.ndarray:
    """Fashion-MNIST arrays embedded in batches, without going through files or the catalog."""
    step = embedder.options.batch_size
    chunks = [embedder.embed_tensors(fashion_pixels(images[i : i + step], embedder.input_size))
              for i in range(0, len(images), step)]
    return np.concatenate(chunks) if chunks else np.zeros((0, embedder.dim), np.float32)


def raw_pixels(images: np.ndarray) -> np.ndarray:
    """The raw-pixels baseline: each image's pixels as one L2-normalised vector."""
    flat = images.reshape(len(images), -1).astype(np.float32)
    return flat / np.maximum(np.linalg.norm(flat, axis=1, keepdims=True), 1e-12)


def fashion_split(limit: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(query images, labels, gallery images, labels): `limit` test vs 10x`limit` train."""
    queries, query_labels = fashion_mnist(split="test", limit=limit)
    gallery, gallery_labels = fashion_mnist(split="train",
                                            limit=None if limit is None else 10 * limit)
    return queries, query_labels, gallery, gallery_labels


def fashion_benchmark(embedder: Embedder, *, limit: int | None,
                      vectors: Callable[[np.ndarray], np.ndarray] | None = None) -> Benchmark:
    """The Fashion-MNIST test split queries the training split; class = relevance."""
    queries, query_labels, gallery, gallery_labels = fashion_split(limit)
    embed = vectors or (lambda images: embed_arrays(embedder, images))
    return Benchmark("fashion-mnist", embed(queries), embed(gallery),
                     query_labels=query_labels, gallery_labels=gallery_labels)


def near_duplicate_images(*, distractors: int) -> tuple[list, list[int], list, np.ndarray]:
    """(queries, their original's row, gallery originals, distractor arrays): deterministic.

    Each bundled photo is an original; its queries are one copy per transform of
    `retrieval.augment` (crop, rotation, shear, warp, colour, blur, JPEG, 1/4 size, text).
    Distractors are the first `distractors` Fashion-MNIST test images.
    """
    photos = bundled_photos()
    queries, owners = [], []
    for row, photo in enumerate(photos):
        for _, variant in near_duplicate_variants(photo.image, NEAR_DUPLICATE_SEED + row):
            queries.append(variant)
            owners.append(row)
    originals = [photo.image for photo in photos]
    fashion, _ = fashion_mnist(split="test", limit=distractors)
    return queries, owners, originals, fashion


def near_duplicate_benchmark(embedder: Embedder, *, limit: int | None) -> Benchmark:
    """Transformed copies of real photos must find their original among distractors."""
    queries, owners, originals, fashion = near_duplicate_images(distractors=limit or 5000)
    gallery = np.concatenate([embedder.embed_images(originals), embed_arrays(embedder, fashion)])
    return Benchmark("near-duplicates", embedder.embed_images(queries), gallery,
                     relevant=[{owner} for owner in owners])


def labels_benchmark(runtime: Runtime, space: Space, *, limit: int | None) -> Benchmark:
    """Every labelled image of the space queries all the others (leave-one-out)."""
    ids, blobs = [], []
    with runtime.session() as session:
        for batch_ids, batch_blobs, _ in embedding_queries.iter_vectors(session=session,
                                                                       space_id=space.id):
            ids += batch_ids
            blobs += batch_blobs
        rows = image_queries.images_by_ids(session=session, ids=ids)
    keep = [i for i, image_id in enumerate(ids) if rows.get(image_id) is not None
            and rows[image_id].label is not None and rows[image_id].status == "embedded"]
    if limit is not None:
        keep = keep[:limit]
    if len(keep) < 2:
        raise InvalidRequest(f"space '{space.name}' has {len(keep)} labelled vectors; the labels "
                             "benchmark needs 2 or more (ingest with --label-from-dir)")
    vectors = vectors_from_bytes([blobs[i] for i in keep], space.dim)
    labels = np.array([rows[ids[i]].label for i in keep])
    return Benchmark("labels", vectors, vectors, query_labels=labels, gallery_labels=labels,
                     leave_one_out=True)


def _open(path: Path, box: tuple[float, float, float, float] | None = None) -> Image.Image:
    with Image.open(path) as image:
        image = ImageOps.exif_transpose(image).convert("RGB")
    return image.crop(tuple(round(v) for v in box)) if box is not None else image


def _embed_files(embedder: Embedder, items: Iterator[Image.Image], count: int) -> np.ndarray:
    chunks, batch = [], []
    for image in items:
        batch.append(image)
        if len(batch) == _CHUNK:
            chunks.append(embedder.embed_images(batch))
            batch = []
    if batch:
        chunks.append(embedder.embed_images(batch))
    return np.concatenate(chunks) if count else np.zeros((0, embedder.dim), np.float32)


def revisited_benchmark(embedder: Embedder, *, name: str, data: Path, protocol: str,
                        limit: int | None) -> Benchmark:
    """Revisited Oxford/Paris: cropped queries, relevance and junk by `protocol`."""
    truth = load_revisited(data)
    relevant, junk = revisited_protocol(truth, protocol)
    queries = truth.queries[:limit] if limit else truth.queries
    gallery = _embed_files(embedder, (_open(p) for p in truth.gallery_paths()),
                           len(truth.gallery))
    query_vectors = _embed_files(
        embedder, (_open(truth.image_path(q.name), q.bbox) for q in queries), len(queries))
    return Benchmark(name, query_vectors, gallery, relevant=relevant[: len(queries)],
                     junk=junk[: len(queries)])


def holidays_benchmark(embedder: Embedder, *, data: Path, limit: int | None) -> Benchmark:
    """INRIA Holidays: the first image of each group queries every image; itself is junk."""
    truth = load_holidays(data)
    gallery = _embed_files(embedder, (_open(p) for p in truth.gallery_paths()),
                           len(truth.gallery))
    rows = list(truth.queries[:limit] if limit else truth.queries)
    return Benchmark("holidays", gallery[rows], gallery, relevant=list(truth.relevant[: len(rows)]),
                     junk=truth.junk()[: len(rows)])
