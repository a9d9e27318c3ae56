"""What a training job learns from: the catalog's labelled images, split into train and
validation, as stored files (to fine-tune a backbone) or as cached vectors (for a head)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from lookalike.retrieval.embedding.embedder import image_to_pixels
from lookalike.retrieval.images import decode_image
from lookalike.retrieval.training.copyedits import CopyAugmenter
from lookalike.retrieval.training.twoviews import copy_view, view_seed
from lookalike.services.catalog import embeddings as embedding_queries
from lookalike.services.catalog import images as image_queries
from lookalike.services.errors import InvalidRequest
from lookalike.services.runtime import Runtime

MIN_PER_CLASS = 2
_STORED_MAX_PIXELS = 1 << 40  # stored originals passed the upload limits when ingested


@dataclass(frozen=True)
class LabelledSplit:
    """One side of the split: catalog ids, stored files and class indices, aligned."""

    image_ids: list[int]
    paths: list[str]
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.image_ids)


@dataclass(frozen=True)
class LabelledImages:
    """The train and validation splits and the class names their indices stand for."""

    classes: list[str]
    train: LabelledSplit
    val: LabelledSplit


def load_labelled(runtime: Runtime, *, collection: str | None, limit: int | None,
                  val_fraction: float, seed: int) -> LabelledImages:
    """The catalog's labelled images, shuffled with `seed`, cut to `limit`, and split per
    class so that every class has validation images; InvalidRequest when too few."""
    with runtime.read_session() as session:
        rows = [(image_id, str(runtime.settings.layout.resolve(path)), label) for
                image_id, path, label in
                image_queries.labelled_images(session=session, collection=collection)]
    where = f" in collection '{collection}'" if collection else ""
    classes = sorted({label for _, _, label in rows})
    if len(classes) < 2:
        raise InvalidRequest(f"training needs labelled images of at least 2 classes{where}; "
                             f"found {len(classes)}. Ingest with --label-from-dir or set labels")
    order = np.random.default_rng(seed).permutation(len(rows))
    if limit is not None:
        order = order[:limit]
    index = {name: i for i, name in enumerate(classes)}
    picked = [rows[i] for i in order]
    labels = np.array([index[label] for _, _, label in picked], dtype=np.int64)
    is_val = _validation_mask(labels, val_fraction)
    return LabelledImages(classes, _side(picked, labels, ~is_val), _side(picked, labels, is_val))


def load_unlabelled(runtime: Runtime, *, collection: str | None, limit: int | None,
                    val_fraction: float, seed: int) -> LabelledImages:
    """The catalog's stored images, labelled or not, shuffled with `seed`, cut to `limit` and
    split; each image is its own class (label = its position), as self-supervision wants."""
    with runtime.read_session() as session:
        rows = [(image_id, str(runtime.settings.layout.resolve(path)), str(image_id))
                for image_id, path in
                image_queries.stored_images(session=session, collection=collection)]
    order = np.random.default_rng(seed).permutation(len(rows))[:limit]
    val_count = round(len(order) * val_fraction)
    if len(order) - val_count < 2 or val_count < 2:
        where = f" in collection '{collection}'" if collection else ""
        raise InvalidRequest(f"self-supervised training needs at least 2 training and 2 "
                             f"validation images{where}; found {len(order)} images (ingest more "
                             "or raise --limit)")
    picked = [rows[i] for i in order]
    labels = np.arange(len(picked), dtype=np.int64)
    is_val = np.arange(len(picked)) < val_count
    return LabelledImages([], _side(picked, labels, ~is_val), _side(picked, labels, is_val))


def _validation_mask(labels: np.ndarray, fraction: float) -> np.ndarray:
    """The first `fraction` of each class's (already shuffled) images, at least 2 of each."""
    if not 0 < fraction < 1:
        raise InvalidRequest(f"val_fraction must be between 0 and 1, got {fraction}")
    mask = np.zeros(len(labels), dtype=bool)
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        if len(members) < 2 * MIN_PER_CLASS:
            raise InvalidRequest(f"class {label} has {len(members)} images; each class needs at "
                                 f"least {2 * MIN_PER_CLASS} (raise --limit or add images)")
        mask[members[:max(MIN_PER_CLASS, round(len(members) * fraction))]] = True
    return mask


def _side(rows: Sequence[tuple[int, str, str]], labels: np.ndarray,
          mask: np.ndarray) -> LabelledSplit:
    chosen = np.flatnonzero(mask)
    return LabelledSplit([rows[i][0] for i in chosen], [rows[i][1] for i in chosen],
                         labels[chosen])


def cached_vectors(runtime: Runtime, *, space_id: int, split: LabelledSplit) -> np.ndarray:
    """(N, D) float32 vectors the space already holds for the split's images, in order;
    InvalidRequest names how many are missing (re-index the space first)."""
    with runtime.read_session() as session:
        found = embedding_queries.vectors_of(session=session, space_id=space_id,
                                             image_ids=split.image_ids)
    missing = len(split.image_ids) - len(found)
    if missing:
        raise InvalidRequest(f"{missing} labelled images have no vector in the base space; "
                             "run `lookalike spaces reindex` on it first")
    return np.stack([np.frombuffer(found[i], dtype="<f4") for i in split.image_ids])


class StoredImages(Dataset[tuple[torch.Tensor, int]]):
    """Stored originals with their class as (3,S,S) uint8 pixels; the trainer augments them."""

    def __init__(self, split: LabelledSplit, *, size: int) -> None:
        self.paths = split.paths
        self.labels = split.labels
        self.size = size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        data = Path(self.paths[index]).read_bytes()
        image = decode_image(data, max_bytes=len(data), max_pixels=_STORED_MAX_PIXELS,
                             draft=(self.size, self.size)).image
        return image_to_pixels(image, size=self.size), int(self.labels[index])


class CopyViews(Dataset[tuple[torch.Tensor, int]]):
    """One fixed copy-edited view of each stored image (seeded apart from training's views):
    the queries a self-supervised job validates with."""

    VALIDATION_EPOCH = 2**32 - 1  # no training epoch reaches it

    def __init__(self, images: StoredImages, *, seed: int) -> None:
        self.images = images
        self.seed = seed
        self.augmenter = CopyAugmenter()

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        pixels, label = self.images[index]
        seed = view_seed(self.seed, self.VALIDATION_EPOCH, index, 0)
        return copy_view(pixels, self.augmenter, seed), label
