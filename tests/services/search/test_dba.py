"""DBA at search time: the re-ranked shortlist agrees with full DBA; per-space, per-query switch."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from lookalike.retrieval.embedding.expansion import database_side_augmentation
from lookalike.retrieval.evaluation.metrics import exact_search
from lookalike.retrieval.index.faiss_index import VectorIndex
from lookalike.services.api.app import create_app
from lookalike.services.catalog import embeddings as embedding_queries
from lookalike.services.catalog.documents import SpaceOptions
from lookalike.services.catalog.models import Space
from lookalike.services.evaluation.benchmarks import Benchmark
from lookalike.services.evaluation.run import _expand
from lookalike.services.index.replicas import IndexReplica, vectors_from_bytes
from lookalike.services.runtime import Runtime
from lookalike.services.search.dba import DEFAULT_DBA_N, DbaPlan, dba_search
from lookalike.services.search.query import search_vector
from lookalike.services.setup import init_catalog, open_runtime
from lookalike.services.spaces.create import SpaceDefinition, create_space
from lookalike.services.spaces.lookup import find_space
from tests.services.conftest import fill_space, ingest_into, make_settings


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture()
def toy() -> tuple[np.ndarray, np.ndarray, np.ndarray, VectorIndex]:
    """200 vectors in 8 noisy clusters (dim 16) under sparse catalog ids, and a query."""
    rng = np.random.default_rng(7)
    centres = rng.normal(size=(8, 16))
    gallery = unit_rows(np.repeat(centres, 25, axis=0) + 0.7 * rng.normal(size=(200, 16)))
    query = unit_rows(centres[:1] + 0.9 * rng.normal(size=(1, 16)))
    ids = 1000 + 3 * np.arange(200, dtype=np.int64)
    index = VectorIndex(16)
    index.add(ids, gallery)
    return gallery, query, ids, index


def as_replica(index: VectorIndex) -> IndexReplica:
    """The index as a replica of an unsaved Flat space, the only way DBA reads an index."""
    space = Space(id=1, name="toy", dim=index.dim, options=SpaceOptions())
    return IndexReplica(space=space, directory=Path("unused"), index=index, watermark=0)


def full_dba(gallery: np.ndarray, query: np.ndarray, *, n: int, qe_n: int | None,
             alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Rows of the whole gallery ranked as `lookalike evaluate` ranks them, and their scores."""
    bench = Benchmark("toy", query, gallery.copy(), relevant=[set()])
    expanded = _expand(bench, qe_n=qe_n, dba_n=n, alpha=alpha)
    scores = bench.gallery @ expanded[0]
    order = np.argsort(-scores, kind="stable")
    return order, scores[order]


@pytest.mark.parametrize("qe_n", [0, 3])
def test_reranked_shortlist_is_in_the_order_full_dba_gives(toy, qe_n: int) -> None:
    gallery, query, ids, index = toy
    plan = DbaPlan(n=4, shortlist=60, alpha=3.0, qe_n=qe_n)
    reranked = dba_search(as_replica(index), query, 60, plan)
    plain = index.search(query, 60)
    order, scores = full_dba(gallery, query, n=4, qe_n=qe_n or None, alpha=3.0)
    shortlisted = np.isin(ids[order], plain.ids[0])

    assert reranked.ids[0].tolist() == ids[order][shortlisted].tolist()
    assert np.allclose(reranked.scores[0], scores[shortlisted], atol=1e-5)
    assert reranked.ids[0].tolist() != plain.ids[0].tolist()
    top10 = dba_search(as_replica(index), query, 10, plan)
    assert top10.ids[0].tolist() == ids[order[:10]].tolist()


def test_a_gallery_smaller_than_dba_n_augments_with_every_other_vector(toy) -> None:
    gallery, query, ids, _ = toy
    index = VectorIndex(16)
    index.add(ids[:3], gallery[:3])
    reranked = dba_search(as_replica(index), query, 5, DbaPlan(n=5, shortlist=10))
    order, scores = full_dba(gallery[:3], query, n=5, qe_n=None, alpha=3.0)
    assert reranked.ids[0].tolist() == [*ids[order].tolist(), -1, -1]
    assert np.allclose(reranked.scores[0][:3], scores, atol=1e-5)


@pytest.fixture(scope="module")
def dba_home(tmp_path_factory: pytest.TempPathFactory, photo_dir: Path) -> Iterator[Runtime]:
    """The bundled photos in the default space (DBA off) and in space `dba3` (DBA 3 on)."""
    settings = make_settings(tmp_path_factory.mktemp("dba") / "home")
    init_catalog(settings)
    runtime = open_runtime(settings)
    ingest_into(runtime, photo_dir)
    create_space(runtime, name="dba3", definition=SpaceDefinition(dba_n=3))
    fill_space(runtime, "dba3")
    yield runtime
    runtime.close()


def catalog_dba_top(runtime: Runtime, space_name: str, image_id: int, *, n: int,
                    k: int) -> tuple[list[int], np.ndarray]:
    """Top-k ids and scores of full DBA over every catalogued vector, queried by `image_id`."""
    with runtime.session() as session:
        space = find_space(session=session, name=space_name)
        batches = list(embedding_queries.iter_vectors(session=session, space_id=space.id))
    ids = np.array([i for batch_ids, _, _ in batches for i in batch_ids])
    gallery = vectors_from_bytes((b for _, blobs, _ in batches for b in blobs), space.dim)
    scores, idx = exact_search(gallery, gallery, n, exclude_self=True)
    augmented = database_side_augmentation(gallery, idx, scores, alpha=3.0)
    ranked = augmented @ gallery[ids.tolist().index(image_id)]
    order = np.argsort(-ranked, kind="stable")[:k]
    return ids[order].tolist(), ranked[order]


@pytest.mark.slow
def test_the_query_switch_overrides_the_space_default(dba_home: Runtime) -> None:
    """With 23 photos the shortlist is the whole catalog: live DBA is exactly full DBA."""
    on = search_vector(dba_home, space_name="dba3", k=5, image_id=4)
    off = search_vector(dba_home, space_name="dba3", k=5, image_id=4, dba=False)
    expected_ids, expected_scores = catalog_dba_top(dba_home, "dba3", 4, n=3, k=5)
    assert (on.dba, off.dba) == (True, False)
    assert [h.image_id for h in on.results] == expected_ids
    assert np.allclose([h.score for h in on.results], expected_scores, atol=1e-5)
    assert [h.score for h in off.results] != [h.score for h in on.results]

    plain = search_vector(dba_home, space_name=None, k=5, image_id=4)
    forced = search_vector(dba_home, space_name=None, k=5, image_id=4, dba=True)
    expected_ids, expected_scores = catalog_dba_top(dba_home, plain.space, 4, n=DEFAULT_DBA_N,
                                                    k=5)
    assert (plain.dba, forced.dba) == (False, True)
    assert [h.image_id for h in forced.results] == expected_ids
    assert np.allclose([h.score for h in forced.results], expected_scores, atol=1e-5)
    assert [h.image_id for h in plain.results] == [h.image_id for h in off.results]
    assert np.allclose([h.score for h in plain.results], [h.score for h in off.results],
                       atol=1e-5)


@pytest.mark.slow
def test_the_api_reports_which_expansions_it_applied(dba_home: Runtime) -> None:
    with TestClient(create_app(dba_home.settings)) as client:
        def answer(query: str) -> dict:
            response = client.post(f"/v1/search?k=3&{query}", json={"image_id": 4})
            assert response.status_code == 200, response.text
            return response.json()

        default_on, off = answer("space=dba3"), answer("space=dba3&dba=false")
        default_off, on = answer(""), answer("dba=true&qe=true")
    assert (default_on["dba"], off["dba"], default_off["dba"], on["dba"]) == (
        True, False, False, True)
    assert (default_on["qe"], on["qe"]) == (False, True)
    assert default_on["results"] != off["results"]
    assert on["results"][0]["image_id"] == default_off["results"][0]["image_id"] == 4
