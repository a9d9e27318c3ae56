"""Duplicate clusters of a space's whole catalog, with CSV and JSON exports.

Every pair of live images whose vectors are at least `threshold` alike is linked (a FAISS
range search) and the links are joined into clusters (connected components). The threshold
defaults to the space's calibrated copy score (`evaluate --benchmark copies --calibrate`).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from typing import TextIO

import numpy as np

from lookalike.retrieval.index.clusters import duplicate_clusters
from lookalike.services.catalog import embeddings as embedding_queries
from lookalike.services.catalog import images as image_queries
from lookalike.services.errors import InvalidRequest
from lookalike.services.index.replicas import vectors_from_bytes
from lookalike.services.ingest.images import delete_image
from lookalike.services.runtime import Runtime
from lookalike.services.spaces.lookup import find_space

CSV_FIELDS = ("cluster", "image_id", "keep", "source", "best", "worst")


@dataclass(frozen=True)
class DuplicateCluster:
    """One cluster: its images (ascending ids; the first is the one to keep) and sources."""

    ids: list[int]
    sources: list[str]
    best: float
    worst: float


@dataclass(frozen=True)
class DuplicateReport:
    space: str
    threshold: float
    threshold_from: str
    images: int
    clusters: list[DuplicateCluster]

    @property
    def extras(self) -> int:
        """Images that de-duplication would remove (all but one per cluster)."""
        return sum(len(c.ids) - 1 for c in self.clusters)

    def to_public(self) -> dict:
        """The JSON export."""
        return {"space": self.space, "threshold": self.threshold,
                "threshold_from": self.threshold_from, "images": self.images,
                "extras": self.extras,
                "clusters": [{"ids": c.ids, "keep": c.ids[0], "sources": c.sources,
                              "best": round(c.best, 6), "worst": round(c.worst, 6)}
                             for c in self.clusters]}

    def write_csv(self, stream: TextIO) -> None:
        """The CSV export: one row per image in a cluster; `keep` marks the one to keep."""
        writer = csv.writer(stream)
        writer.writerow(CSV_FIELDS)
        for number, cluster in enumerate(self.clusters, start=1):
            for image_id, source in zip(cluster.ids, cluster.sources, strict=True):
                writer.writerow((number, image_id, int(image_id == cluster.ids[0]), source,
                                 f"{cluster.best:.6f}", f"{cluster.worst:.6f}"))


def _threshold(given: float | None, calibrated: float | None, space: str) -> tuple[float, str]:
    """The threshold to use and where it came from."""
    if given is not None:
        if not -1.0 <= given <= 1.0:
            raise InvalidRequest(f"threshold {given} is not a cosine similarity; use -1..1")
        return given, "given"
    if calibrated is None:
        raise InvalidRequest(f"space '{space}' has no calibrated copy threshold: give "
                             "--threshold (e.g. 0.9), or fit one with `lookalike evaluate "
                             f"--benchmark copies --calibrate --space {space}`")
    return calibrated, "calibration"


def check_threshold(runtime: Runtime, *, space_name: str | None,
                    threshold: float | None) -> str:
    """The space's name once it exists and has a threshold (given, or calibrated); what
    `find_duplicates` would refuse is refused here, before a job is queued."""
    with runtime.read_session() as session:
        space = find_space(session=session, name=space_name)
        calibration = space.options.copy_calibration
        _threshold(threshold, calibration and calibration.score_threshold, space.name)
        return space.name


def find_duplicates(runtime: Runtime, *, space_name: str | None,
                    threshold: float | None = None) -> DuplicateReport:
    """Clusters of live images in the space at least `threshold` alike, biggest first."""
    with runtime.read_session() as session:
        space = find_space(session=session, name=space_name)
        calibration = space.options.copy_calibration
        value, source = _threshold(threshold, calibration and calibration.score_threshold,
                                   space.name)
        ids, blobs = [], []
        for batch_ids, batch_blobs, _ in embedding_queries.iter_vectors(session=session,
                                                                       space_id=space.id):
            ids += batch_ids
            blobs += batch_blobs
        rows = image_queries.images_by_ids(session=session, ids=ids)
        live = [i for i, image_id in enumerate(ids)
                if image_id in rows and rows[image_id].status == "embedded"]
        vectors = vectors_from_bytes([blobs[i] for i in live], space.dim)
        live_ids = np.array([ids[i] for i in live], dtype=np.int64)
        clusters = [DuplicateCluster(c.ids, [rows[i].source_uri or "" for i in c.ids],
                                     c.best, c.worst)
                    for c in duplicate_clusters(live_ids, vectors, value)]
    return DuplicateReport(space=space.name, threshold=value, threshold_from=source,
                           images=len(live_ids), clusters=clusters)


def delete_extras(runtime: Runtime, report: DuplicateReport) -> list[int]:
    """Delete every clustered image but the first (lowest id) of its cluster: the ids deleted."""
    extras = [image_id for cluster in report.clusters for image_id in cluster.ids[1:]]
    for image_id in extras:
        delete_image(runtime, image_id)
    return extras
