"""`evaluate --benchmark copies`: the near-duplicate benchmark with the copy-detection edits.

Each bundled photo (but one of a stereo pair) is an original; its queries are one copy per edit of
`retrieval.training.copyedits` at strength COPY_STRENGTH, plus one 'mixed' copy (several
edits at once), made with seeds of their own (COPIES_SEED + row: not the near-duplicate
benchmark's and not those a training job draws). Distractors are Fashion-MNIST test images.
Scored per edit type (mAP, recall@1) and over pooled pairs (micro-average precision, as ISC
2021 reports it), optionally after local-feature verification of each query's top candidates.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from lookalike.retrieval.embedding.embedder import Embedder
from lookalike.retrieval.evaluation.copydetection import micro_average_precision
from lookalike.retrieval.training.copyedits import COPY_EDITS, CopyAugmenter, Edit, apply_edit
from lookalike.retrieval.verification import (
    LocalFeatures,
    extract_features,
    query_views,
    verify_views,
)
from lookalike.services.evaluation.benchmarks import embed_arrays
from lookalike.services.sample import bundled_photos, fashion_mnist
from lookalike.services.search.verify import CHANCE_INLIERS

COPIES_SEED = 31_337
COPY_STRENGTH = 0.8
MIXED_PLAN = tuple(Edit(name, 0.25, 0.6) for name in COPY_EDITS)
EDIT_TYPES = (*COPY_EDITS, "mixed")
# The right view of scikit-image's stereo pair shows the left one's scene from a step aside:
# with both as originals, every copy of one would truly match the other.
LEFT_OUT = frozenset({"motorcycle_right"})


@dataclass
class CopyQueries:
    """The benchmark's images: queries with their original's row and edit, and the gallery
    (the originals, named, then the distractors)."""

    images: list[Image.Image]
    owners: np.ndarray
    edits: list[str]
    originals: list[Image.Image]
    distractors: np.ndarray
    names: list[str]


def copy_queries(*, distractors: int, photos: int | None = None) -> CopyQueries:
    """One copy per edit type of each bundled photo (the first `photos`, less LEFT_OUT),
    deterministic."""
    chosen = [p for p in bundled_photos() if p.name not in LEFT_OUT][:photos]
    images, owners, edits = [], [], []
    mixed = CopyAugmenter(MIXED_PLAN)
    for row, photo in enumerate(chosen):
        gen = np.random.default_rng(COPIES_SEED + row)
        for name in COPY_EDITS:
            images.append(apply_edit(photo.image, name, gen, strength=COPY_STRENGTH))
        images.append(mixed(photo.image, gen))
        owners += [row] * len(EDIT_TYPES)
        edits += list(EDIT_TYPES)
    fashion, _ = fashion_mnist(split="test", limit=distractors)
    return CopyQueries(images, np.array(owners), edits, [p.image for p in chosen], fashion,
                       [p.name for p in chosen])


@dataclass
class Candidates:
    """Each query's top-n gallery rows with their scores and inliers (-1: not verified), and
    the rank (1-based, over the whole gallery) of its original."""

    ids: np.ndarray
    scores: np.ndarray
    inliers: np.ndarray
    original_rank: np.ndarray


def rank_candidates(queries: np.ndarray, gallery: np.ndarray, owners: np.ndarray,
                    top_n: int) -> Candidates:
    """Exact similarity ranking: each query's top_n and its original's rank."""
    scores = queries @ gallery.T
    order = np.argsort(-scores, axis=1, kind="stable")
    rank = np.argmax(order == owners[:, None], axis=1) + 1
    top = order[:, :top_n]
    return Candidates(top, np.take_along_axis(scores, top, axis=1),
                      np.full(top.shape, -1, np.int64), rank)


def verify_candidates(found: Candidates, data: CopyQueries) -> Candidates:
    """Inliers of every top candidate, then each query's top re-ranked as search does:
    above-chance inliers first, by inliers; the rest in their similarity order."""
    cache: dict[int, LocalFeatures] = {}
    ids, scores, inliers = found.ids.copy(), found.scores.copy(), found.inliers.copy()
    rank = found.original_rank.copy()
    for q, image in enumerate(data.images):
        views = query_views(image)
        for j, row in enumerate(ids[q]):
            if int(row) not in cache:
                cache[int(row)] = extract_features(_gallery_image(data, int(row)))
            inliers[q, j] = verify_views(views, cache[int(row)]).inliers
        key = np.where(inliers[q] >= CHANCE_INLIERS, -inliers[q], 0)
        order = np.argsort(key, kind="stable")
        ids[q], scores[q], inliers[q] = ids[q][order], scores[q][order], inliers[q][order]
        hit = np.flatnonzero(ids[q] == data.owners[q])
        if len(hit):
            rank[q] = int(hit[0]) + 1
    return Candidates(ids, scores, inliers, rank)


def _gallery_image(data: CopyQueries, row: int) -> Image.Image:
    """Gallery row `row`: an original photo, or a Fashion-MNIST distractor as stored (28 px)."""
    if row < len(data.originals):
        return data.originals[row]
    return Image.fromarray(data.distractors[row - len(data.originals)]).convert("RGB")


def pair_values(found: Candidates) -> np.ndarray:
    """One value per (query, candidate) pair, higher for more of a copy: the similarity, or
    1 + inliers where the inliers are above chance (verified pairs rank above the rest)."""
    verified = found.inliers >= CHANCE_INLIERS
    return np.where(verified, 1.0 + found.inliers, found.scores).ravel()


@dataclass
class EditScores:
    queries: int
    map: float
    recall_at_1: float


@dataclass
class CopyEvaluation:
    """What `evaluate --benchmark copies` prints."""

    space: str
    queries: int
    gallery: int
    verify: bool
    top_n: int
    map: float
    recall_at_1: float
    micro_ap: float
    per_edit: dict[str, EditScores]
    embed_seconds: float
    search_seconds: float
    calibration: dict | None = None
    held_out_false_positives: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_public(self) -> dict:
        data = asdict(self)
        for key in ("map", "recall_at_1", "micro_ap", "embed_seconds", "search_seconds"):
            data[key] = round(data[key], 4)
        data["per_edit"] = {name: {"queries": s.queries, "map": round(s.map, 4),
                                   "recall_at_1": round(s.recall_at_1, 4)}
                            for name, s in self.per_edit.items()}
        return data


def per_edit_scores(found: Candidates, edits: list[str]) -> dict[str, EditScores]:
    """mAP (one relevant item: 1 / its rank) and recall@1 per edit type."""
    labels = np.array(edits)
    scores = {}
    for name in EDIT_TYPES:
        ranks = found.original_rank[labels == name]
        if len(ranks):
            scores[name] = EditScores(len(ranks), float(np.mean(1.0 / ranks)),
                                      float(np.mean(ranks == 1)))
    return scores


def score_copies(space: str, found: Candidates, data: CopyQueries, *, gallery: int,
                 verify: bool, times: tuple[float, float]) -> CopyEvaluation:
    """The figures of one run from its candidates."""
    positives = (found.ids == data.owners[:, None]).ravel()
    return CopyEvaluation(
        space=space, queries=len(data.images), gallery=gallery, verify=verify,
        top_n=found.ids.shape[1], map=float(np.mean(1.0 / found.original_rank)),
        recall_at_1=float(np.mean(found.original_rank == 1)),
        micro_ap=micro_average_precision(pair_values(found), positives, len(data.images)),
        per_edit=per_edit_scores(found, data.edits), embed_seconds=times[0],
        search_seconds=times[1])


def run_copies(embedder: Embedder, space: str, *, distractors: int, photos: int | None,
               verify: bool, top_n: int) -> tuple[CopyEvaluation, Candidates, CopyQueries]:
    """Embed, rank, optionally verify, and score the copies benchmark."""
    started = time.perf_counter()
    data = copy_queries(distractors=distractors, photos=photos)
    gallery = np.concatenate([embedder.embed_images(data.originals),
                              embed_arrays(embedder, data.distractors)])
    queries = embedder.embed_images(data.images)
    embedded = time.perf_counter()
    found = rank_candidates(queries, gallery, data.owners, min(top_n, len(gallery)))
    if verify:
        found = verify_candidates(found, data)
    result = score_copies(space, found, data, gallery=len(gallery), verify=verify,
                          times=(embedded - started, time.perf_counter() - embedded))
    return result, found, data
