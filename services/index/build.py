"""`lookalike index build` and `bench index`: pick, tune and build a space's FAISS index."""

from __future__ import annotations

import re
import time
from dataclasses import asdict, dataclass

import numpy as np

from lookalike.retrieval.index.choice import IndexChoice, choose_index, clustered_vectors
from lookalike.services.catalog import embeddings as embedding_queries
from lookalike.services.errors import InvalidRequest
from lookalike.services.index.replicas import vectors_from_bytes
from lookalike.services.index.snapshots import SnapshotReport, rebuild_all
from lookalike.services.runtime import Runtime
from lookalike.services.spaces.lookup import find_space

HELD_OUT = 1000
_UNITS = {"": 1, "B": 1, "KB": 2**10, "MB": 2**20, "GB": 2**30, "TB": 2**40}


def parse_bytes(text: str) -> int:
    """'4GB', '512MB', '1e9' or '1000000' as a number of bytes."""
    match = re.fullmatch(r"\s*([0-9.eE+]+)\s*([KMGT]?B?)\s*", text.upper())
    if match is None or match.group(2) not in _UNITS:
        raise InvalidRequest(f"memory size '{text}' is not understood; write e.g. 4GB, 512MB")
    return int(float(match.group(1)) * _UNITS[match.group(2)])


@dataclass
class BuildReport:
    """What was chosen for a space (or synthetic data) and what it measured."""

    space: str
    vectors: int
    dim: int
    held_out: int
    choice: IndexChoice
    snapshot: SnapshotReport | None
    seconds: float

    def to_public(self) -> dict:
        data = asdict(self)
        data["choice"]["tried"] = [asdict(t) for t in self.choice.tried]
        return data


def split_held_out(n: int, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(base rows, held-out query rows): up to 1000 or a tenth of the rows are held out."""
    held = min(HELD_OUT, max(1, n // 10))
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[held:]), np.sort(order[:held])


def build_space_index(runtime: Runtime, *, space_name: str | None, target_recall: float,
                      max_bytes: int) -> BuildReport:
    """Choose and tune the space's index on held-out vectors, store it with the space, rebuild."""
    started = time.perf_counter()
    with runtime.session() as session:
        space = find_space(session=session, name=space_name)
        blobs = [b for _, batch, _ in embedding_queries.iter_vectors(session=session,
                                                                      space_id=space.id)
                 for b in batch]
        name, dim = space.name, space.dim
    if len(blobs) < 2:
        raise InvalidRequest(f"space '{name}' has {len(blobs)} vectors; embed images into it "
                             "first (`lookalike ingest` or `lookalike spaces reindex`)")
    vectors = vectors_from_bytes(blobs, dim)
    base, held = split_held_out(len(vectors))
    _, choice = choose_index(vectors[base], vectors[held], target_recall=target_recall,
                             max_bytes=max_bytes)
    with runtime.session() as session:
        space = find_space(session=session, name=name)
        space.options = space.options.model_copy(
            update={"index_factory": choice.factory, "search_params": choice.params})
        session.commit()
    report = rebuild_all(runtime, space_name=name)[0]
    return BuildReport(name, len(vectors), dim, len(held), choice, report,
                       time.perf_counter() - started)


def bench_index(*, vectors: int, dim: int, queries: int, target_recall: float,
                max_bytes: int, clusters: int = 1000, spread: float = 1.0) -> BuildReport:
    """The same choice on synthetic clustered unit vectors (`queries` held out)."""
    started = time.perf_counter()
    data = clustered_vectors(vectors + queries, dim, clusters=clusters, spread=spread)
    _, choice = choose_index(data[:vectors], data[vectors:], target_recall=target_recall,
                             max_bytes=max_bytes)
    return BuildReport("synthetic", vectors, dim, queries, choice, None,
                       time.perf_counter() - started)
