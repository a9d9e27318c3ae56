"""Milvus spaces (milvus-lite here): the same search answers as FAISS on the same vectors,
the follower keeps the collection up to the catalog, and verify / rebuild / delete work on it."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from lookalike.services.bench.search import free_port
from lookalike.services.catalog import embeddings as embedding_queries
from lookalike.services.catalog import images as image_queries
from lookalike.services.catalog import spaces as space_queries
from lookalike.services.catalog.documents import SpaceOptions
from lookalike.services.catalog.models import Space
from lookalike.services.catalog.schemas import ImageCreate, SpaceCreate
from lookalike.services.errors import InvalidRequest
from lookalike.services.index.build import build_space_index
from lookalike.services.index.milvus_store import (
    Entity,
    MilvusCollection,
    collection_name,
    connect,
    disconnect,
)
from lookalike.services.index.snapshots import rebuild_all
from lookalike.services.index.verify import verify_all
from lookalike.services.runtime import Runtime
from lookalike.services.search.filtered import milvus_fields
from lookalike.services.search.filters import Filters
from lookalike.services.search.query import search_vector
from lookalike.services.setup import init_catalog, open_runtime
from lookalike.services.spaces.lifecycle import delete_space
from tests.milvus_server import milvus_lite_server
from tests.services.conftest import make_settings

DIM = 16
COUNT = 300


def unit_rows(rng: np.random.Generator, count: int) -> np.ndarray:
    vectors = rng.standard_normal((count, DIM)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def add_images(runtime: Runtime, count: int, *, start: int = 0) -> list[int]:
    """Image rows labelled a/b/c in collections x/y (by position)."""
    rows = [ImageCreate(sha256=hashlib.sha256(f"m{i}".encode()).hexdigest(),
                        source_uri=f"synthetic://m/{i}", collection="xy"[i % 2],
                        label="abc"[i % 3]) for i in range(start, start + count)]
    with runtime.session() as session:
        found = image_queries.add_images(session=session, rows=rows)
        session.commit()
    return [found[row.sha256][0] for row in rows]


def make_space(runtime: Runtime, name: str, backend: str) -> Space:
    with runtime.session() as session:
        space = space_queries.create_space(session=session, data=SpaceCreate(
            name=name, backbone="synthetic", layer="none", pooling="gap", dim=DIM,
            options=SpaceOptions(backend=backend)))
        session.commit()
        session.expunge(space)
    return space


def write_vectors(runtime: Runtime, space: Space, ids: list[int], vectors: np.ndarray) -> None:
    with runtime.session() as session:
        embedding_queries.add_embeddings(session=session, space_id=space.id, image_ids=ids,
                                         vectors=[v.astype("<f4").tobytes() for v in vectors])
        session.commit()


@pytest.fixture()
def twin(tmp_path: Path) -> Iterator[tuple[Runtime, list[int], np.ndarray]]:
    """One catalog, two spaces on the same vectors: `flat` (FAISS) and `lite` (Milvus)."""
    settings = make_settings(tmp_path / "home")
    init_catalog(settings)
    runtime = open_runtime(settings)
    ids = add_images(runtime, COUNT)
    vectors = unit_rows(np.random.default_rng(0), COUNT)
    for name, backend in (("flat", "faiss"), ("lite", "milvus")):
        write_vectors(runtime, make_space(runtime, name, backend), ids, vectors)
    yield runtime, ids, vectors
    runtime.close()


def top(runtime: Runtime, space: str, image_id: int, **options: object) -> list[int]:
    result = search_vector(runtime, space_name=space, k=10, image_id=image_id,
                           **options)  # type: ignore[arg-type]
    return [hit.image_id for hit in result.results]


@pytest.mark.parametrize("options", [{}, {"qe": True}, {"dba": True},
                                     {"filters": Filters(label="b")},
                                     {"filters": Filters(collection="x", label="a"),
                                      "dba": True}])
def test_exact_milvus_answers_the_ids_faiss_answers(twin, options: dict) -> None:
    runtime, ids, _ = twin
    for query in ids[:5]:
        assert top(runtime, "lite", query, **options) == top(runtime, "flat", query, **options)


def test_a_filter_returns_k_hits_when_k_images_match(twin) -> None:
    runtime, ids, _ = twin
    wanted = Filters(collection="y", label="c")  # 1 image in 6 (50 of 300)
    for space in ("flat", "lite"):
        result = search_vector(runtime, space_name=space, k=40, image_id=ids[0],
                               filters=wanted)
        assert len(result.results) == 40
        assert {(h.collection, h.label) for h in result.results} == {("y", "c")}


def test_a_label_filter_runs_on_milvus_fields_with_any_characters(twin) -> None:
    runtime, ids, _ = twin
    odd = 'a" or id > 0 or label == "b\\'  # a quote, an expression, a backslash
    rows = [ImageCreate(sha256=hashlib.sha256(f"odd{i}".encode()).hexdigest(),
                        source_uri=f"synthetic://odd/{i}", collection="x", label=odd)
            for i in range(3)]
    with runtime.session() as session:
        found = image_queries.add_images(session=session, rows=rows)
        session.commit()
    new = [found[row.sha256][0] for row in rows]
    with runtime.session() as session:
        spaces = {name: space_queries.get_space(session=session, name=name)
                  for name in ("flat", "lite")}
    for space in spaces.values():
        write_vectors(runtime, space, new, unit_rows(np.random.default_rng(9), 3))
    assert milvus_fields(Filters(label=odd)) == 'label == "a\\" or id > 0 or label == \\"b\\\\"'
    for name in spaces:
        result = search_vector(runtime, space_name=name, k=10, image_id=ids[0],
                               filters=Filters(collection="x", label=odd))
        assert sorted(h.image_id for h in result.results) == new


def test_an_added_image_is_found_at_once_and_a_deleted_one_is_gone(twin) -> None:
    runtime, ids, _ = twin
    assert top(runtime, "lite", ids[0])  # the collection is open and followed from here on
    with runtime.session() as session:
        space = space_queries.get_space(session=session, name="lite")
        session.expunge(space)
    [new] = add_images(runtime, 1, start=COUNT)
    vector = unit_rows(np.random.default_rng(1), 1)
    write_vectors(runtime, space, [new], vector)
    assert top(runtime, "lite", new)[0] == new
    with runtime.session() as session:
        image_queries.mark_image_deleted(session=session, image_id=new)
        session.commit()
    assert new not in top(runtime, "lite", ids[0], filters=Filters()) + top(
        runtime, "lite", ids[1])
    store = MilvusCollection(runtime.milvus(), collection_name(runtime.settings, space), DIM)
    assert not store.vectors([new])


def test_verify_finds_a_damaged_collection_and_rebuild_repairs_it(twin) -> None:
    runtime, ids, vectors = twin
    [unopened] = [r for r in verify_all(runtime) if r.space == "lite"]
    assert unopened.missing == ids  # no search or follower has created the collection yet
    top(runtime, "lite", ids[0])
    assert all(report.ok for report in verify_all(runtime))
    with runtime.session() as session:
        space = space_queries.get_space(session=session, name="lite")
        session.expunge(space)
    store = MilvusCollection(runtime.milvus(), collection_name(runtime.settings, space), DIM)
    store.delete(ids[:3])
    store.upsert([Entity(10**9, vectors[0], "x", "a"),
                  Entity(ids[10], -vectors[10], "x", "b"),
                  Entity(ids[11], vectors[11], "elsewhere", "c")])
    [report] = [r for r in verify_all(runtime) if r.space == "lite"]
    assert (report.missing, report.extra, report.stale) == (ids[:3], [10**9], ids[10:12])
    assert "index rebuild --space lite" in report.advice()
    [rebuilt] = rebuild_all(runtime, space_name="lite")
    assert rebuilt.vectors == COUNT
    assert all(r.ok for r in verify_all(runtime))
    assert top(runtime, "lite", ids[0]) == top(runtime, "flat", ids[0])


def test_deleting_a_milvus_space_drops_its_collection(twin) -> None:
    runtime, ids, _ = twin
    top(runtime, "lite", ids[0])
    with runtime.session() as session:
        space = space_queries.get_space(session=session, name="lite")
        session.expunge(space)
    name = collection_name(runtime.settings, space)
    assert runtime.milvus().has_collection(name)
    deleted = delete_space(runtime, name="lite")
    assert deleted.milvus_collection == name
    assert not runtime.milvus().has_collection(name)


def test_index_build_chooses_a_milvus_index_by_measured_recall(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "home")
    init_catalog(settings)
    with open_runtime(settings) as runtime:
        space = make_space(runtime, "lite", "milvus")
        ids = add_images(runtime, 1000)
        centres = unit_rows(np.random.default_rng(5), 10)
        noisy = np.repeat(centres, 100, axis=0) + 0.3 * unit_rows(np.random.default_rng(6),
                                                                   1000)
        write_vectors(runtime, space, ids, noisy / np.linalg.norm(noisy, axis=1,
                                                                   keepdims=True))
        other = open_runtime(settings)  # another process's view, opened before the build
        top(other, "lite", ids[0])
        report = build_space_index(runtime, space_name="lite", target_recall=0.9,
                                   max_bytes=2**30)
        assert report.choice.meets_target and report.choice.recall >= 0.9, report.choice
        assert report.note is not None and all(t in report.note for t in ("IVF_PQ", "HNSW"))
        tried = {trial.factory.split("(")[0] for trial in report.choice.tried}
        assert tried == {"IVF_FLAT", "FLAT"}
        with runtime.read_session() as session:
            stored = space_queries.get_space(session=session, name="lite")
            assert stored is not None
            index = stored.options.milvus_index
        assert report.choice.factory.startswith(index.index_type)
        assert index.search_params == report.choice.params
        described = runtime.milvus().describe_index(collection_name(settings, space), "vector")
        assert described["index_type"] == index.index_type
        assert top(runtime, "lite", ids[0])[0] == ids[0]
        assert top(other, "lite", ids[0])[0] == ids[0]
        [seen] = other.loaded_replicas()
        assert seen.search_params == index.search_params
        other.close()


def test_an_unreachable_milvus_is_an_error_that_names_the_address_and_the_setting(
        tmp_path: Path) -> None:
    """Nothing listens on the address: the user learns which address and which setting."""
    settings = make_settings(tmp_path, milvus_uri="http://127.0.0.1:9/",
                             milvus_connect_timeout=0.5)
    with pytest.raises(InvalidRequest, match=r"cannot reach Milvus at http://127\.0\.0\.1:9/"
                       r".*LOOKALIKE_MILVUS_URI"):
        connect(settings)


def test_connecting_waits_for_a_milvus_that_is_still_starting(tmp_path: Path) -> None:
    """A server (or a milvus-lite engine) that refuses connections while it starts is tried
    again until the connect timeout, not given up on at the first refusal."""
    port = free_port()
    settings = make_settings(tmp_path, milvus_uri=f"http://127.0.0.1:{port}",
                             milvus_connect_timeout=90)
    with ThreadPoolExecutor(1) as pool:
        connecting = pool.submit(connect, settings)
        with milvus_lite_server(tmp_path / "milvus", port=port):
            assert connecting.result(timeout=120).list_collections() == []
            disconnect(settings)
