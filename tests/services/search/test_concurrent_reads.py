"""Searches with αQE and DBA read a replica only under its lock, so catch-up never adds to a
FAISS index beside a search, and they stay well formed while uploads and deletes stream in."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from functools import wraps
from io import BytesIO
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lookalike.retrieval.index.faiss_index import VectorIndex
from lookalike.services.catalog import embeddings as embedding_queries
from lookalike.services.catalog.models import Space
from lookalike.services.index.replicas import IndexReplica
from lookalike.services.index.snapshots import snapshot_all
from lookalike.services.index.verify import verify_all
from lookalike.services.ingest.images import delete_image
from lookalike.services.ingest.pipeline import ingest_bytes
from lookalike.services.runtime import Runtime
from lookalike.services.search.query import SearchResult, search_vector
from lookalike.services.setup import init_catalog, open_runtime
from lookalike.services.spaces.lookup import find_space
from tests.services.conftest import make_settings, synthetic_space

K = 5
SWITCHES = [{"qe": True}, {"dba": True}, {"qe": True, "dba": True}]
STREAM_S = 30.0  # the uploads stop at this bound even if the machine is slow
UPLOADS = 24


@pytest.fixture()
def toy_home(tmp_path: Path) -> Iterator[tuple[Runtime, Space]]:
    """A catalog whose one space holds 60 random vectors (no model is loaded)."""
    settings = make_settings(tmp_path / "home")
    init_catalog(settings)
    runtime = open_runtime(settings)
    yield runtime, synthetic_space(runtime, "toy", count=60)
    runtime.close()


def loaded_replica(runtime: Runtime, space: Space) -> IndexReplica:
    with runtime.session() as session:
        return runtime.replica(find_space(session=session, name=space.name), session=session)


def first_id(runtime: Runtime, space: Space) -> int:
    with runtime.session() as session:
        return embedding_queries.changes_since(session=session, space_id=space.id,
                                               watermark=0, limit=1)[0].image_id


@pytest.mark.parametrize("switch", SWITCHES)
def test_every_index_read_of_a_search_holds_the_replica_lock(
        toy_home: tuple[Runtime, Space], monkeypatch: pytest.MonkeyPatch, switch: dict) -> None:
    runtime, space = toy_home
    replica = loaded_replica(runtime, space)
    unlocked: list[str] = []
    for name in ("search", "reconstruct", "contains", "ids"):
        read = getattr(VectorIndex, name)

        @wraps(read)
        def checked(index: VectorIndex, *args: object, _read=read, **kwargs: object) -> object:
            if not replica._lock._is_owned():
                unlocked.append(_read.__name__)
            return _read(index, *args, **kwargs)

        monkeypatch.setattr(VectorIndex, name, checked)
    answer = search_vector(runtime, space_name="toy", k=K, image_id=first_id(runtime, space),
                           **switch)
    assert len(answer.results) == K
    assert unlocked == []


def test_a_dba_search_waits_while_another_thread_holds_the_replica(
        toy_home: tuple[Runtime, Space]) -> None:
    runtime, space = toy_home
    replica, image_id = loaded_replica(runtime, space), first_id(runtime, space)
    answers: list[SearchResult | BaseException] = []

    def search() -> None:
        try:
            answers.append(search_vector(runtime, space_name="toy", k=K, image_id=image_id,
                                         qe=True, dba=True))
        except BaseException as exc:  # reported by the assertions below
            answers.append(exc)

    thread = threading.Thread(target=search)
    with replica._lock:  # as catch-up holds it while it adds
        thread.start()
        thread.join(0.5)
        assert answers == [], "the search read the index while the replica was locked"
    thread.join(30)
    assert len(answers) == 1 and isinstance(answers[0], SearchResult), answers
    assert answers[0].dba and answers[0].qe and len(answers[0].results) == K


def noise_png(seed: int) -> bytes:
    """A small PNG of random pixels: a new image (and sha256) for every seed."""
    pixels = np.random.default_rng(seed).integers(0, 256, (80, 96, 3), dtype=np.uint8)
    out = BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


def check_well_formed(answer: SearchResult, switch: dict) -> None:
    """At most k distinct hits, finite scores in descending order, the expansions asked."""
    ids = [hit.image_id for hit in answer.results]
    scores = [hit.score for hit in answer.results]
    assert 1 <= len(ids) <= K and len(set(ids)) == len(ids), ids
    assert np.isfinite(scores).all() and scores == sorted(scores, reverse=True), scores
    assert (answer.qe, answer.dba) == (switch.get("qe", False), switch.get("dba", False))


@pytest.mark.slow
def test_qe_and_dba_searches_stay_well_formed_while_uploads_and_deletes_stream_in(
        photo_home: Runtime) -> None:
    runtime = photo_home
    streaming = threading.Event()
    streaming.set()
    answers: list[tuple[dict, SearchResult]] = []
    errors: list[BaseException] = []

    def searches(switch: dict) -> None:
        while streaming.is_set() and not errors:
            try:
                answers.append((switch, search_vector(runtime, space_name=None, k=K,
                                                      image_id=1, **switch)))
            except BaseException as exc:  # reported by the assertions below
                errors.append(exc)

    def uploads() -> None:
        deadline = time.monotonic() + STREAM_S
        try:
            for n in range(UPLOADS):
                if time.monotonic() > deadline or errors:
                    return
                added = ingest_bytes(runtime, noise_png(n), source=f"stream-{n}").image
                if n % 3 == 0:  # removals too: a neighbour may vanish between two reads
                    delete_image(runtime, added.id)
        except BaseException as exc:
            errors.append(exc)
        finally:
            streaming.clear()

    threads = [threading.Thread(target=searches, args=(switch,)) for switch in SWITCHES]
    threads.append(threading.Thread(target=uploads))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(STREAM_S + 60)
    assert not any(thread.is_alive() for thread in threads)
    assert errors == []
    assert len(answers) >= len(SWITCHES), "the searches did not run beside the uploads"
    for switch, answer in answers:
        check_well_formed(answer, switch)
    snapshot_all(runtime)  # the live replica, written as it is, is what verify reads back
    reports = verify_all(runtime)
    assert all(report.ok for report in reports), [report.advice() for report in reports]
