"""VectorIndex: ids, upsert, removal, approximate vs exact search, and the array contract."""

from __future__ import annotations

import faiss
import numpy as np
import pytest

from lookalike.retrieval.errors import (
    IndexIdNotFound,
    IndexNotTrained,
    IndexShapeError,
    IndexTrainingError,
    InvalidIndexFactory,
    InvalidSearchParameter,
)
from lookalike.retrieval.index.faiss_index import VectorIndex

DIM = 32
# (factory, search params) for one type per removal strategy: compacting Flat, tombstoned
# HNSW, tombstoned IVF, and tombstoned IVF under an exact re-ranking layer (the selector must
# reach the base index through it); the IVF types are trained on the data they index.
KINDS = [("Flat", None), ("HNSW32", {"efSearch": 64}), ("IVF16,Flat", {"nprobe": 16}),
         ("IVF16,PQ8x4fs,RFlat", {"nprobe": 16, "k_factor": 8})]


def unit_rows(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def random_unit(n: int, seed: int, dim: int = DIM) -> np.ndarray:
    return unit_rows(np.random.default_rng(seed).standard_normal((n, dim)))


def clustered_unit(n: int, seed: int, clusters: int = 50) -> np.ndarray:
    """Unit vectors around 50 fixed centres, noisy enough that approximate search can miss."""
    centres = np.random.default_rng(0).standard_normal((clusters, DIM))
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, clusters, size=n)
    return unit_rows(centres[labels] + rng.standard_normal((n, DIM)))


def filled(factory: str, vectors: np.ndarray, ids: np.ndarray) -> VectorIndex:
    index = VectorIndex(DIM, factory=factory)
    index.train(vectors)
    index.add(ids, vectors)
    return index


def recall_at(approx: np.ndarray, exact: np.ndarray) -> float:
    hits = sum(len(set(a) & set(e)) for a, e in zip(approx, exact, strict=True))
    return hits / exact.size


@pytest.fixture(autouse=True)
def one_faiss_thread():
    """Small indexes run faster on one thread; OpenMP spinning on a busy 2-core box does not."""
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(threads)


@pytest.fixture(scope="module")
def gallery() -> tuple[np.ndarray, np.ndarray]:
    """600 vectors with sparse, large catalog ids."""
    ids = np.random.default_rng(7).choice(10**9, size=600, replace=False).astype(np.int64)
    return ids, random_unit(600, seed=1)


@pytest.mark.parametrize(("factory", "params"), KINDS)
def test_ids_round_trip_and_each_vector_finds_itself(factory, params, gallery) -> None:
    ids, vectors = gallery
    index = filled(factory, vectors, ids)
    assert index.ntotal == 600
    assert np.array_equal(index.ids(), np.sort(ids))
    assert index.ids().dtype == np.int64
    hits = index.search(vectors[:50], 3, params=params)
    assert np.array_equal(hits.ids[:, 0], ids[:50])
    np.testing.assert_allclose(hits.scores[:, 0], 1.0, atol=1e-5)
    assert (np.diff(hits.scores, axis=1) <= 0).all()
    assert index.contains(int(ids[3])) and not index.contains(int(ids.max()) + 1)
    np.testing.assert_allclose(index.reconstruct(int(ids[9])), vectors[9], atol=1e-6)


@pytest.mark.parametrize(("factory", "params"), KINDS)
def test_upsert_replaces_the_vector_and_never_duplicates_the_id(factory, params, gallery) -> None:
    ids, vectors = gallery
    index = filled(factory, vectors, ids)
    fresh = random_unit(5, seed=99)
    index.add(ids[:5], fresh)
    assert index.ntotal == 600
    hits = index.search(fresh, 10, params=params)
    assert np.array_equal(hits.ids[:, 0], ids[:5])
    old = index.search(vectors[:5], 10, params=params)
    for row in old.ids:
        assert len(set(row.tolist())) == 10
    np.testing.assert_allclose(index.reconstruct(int(ids[2])), fresh[2], atol=1e-6)


@pytest.mark.parametrize(("factory", "params"), [*KINDS, ("IVF16,PQ8x4", {"nprobe": 16})])
def test_removed_ids_never_come_back_from_search(factory, params, gallery) -> None:
    ids, vectors = gallery
    index = filled(factory, vectors, ids)
    gone = ids[:40]
    absent = np.array([int(ids.max()) + 1], dtype=np.int64)
    assert index.remove(np.concatenate([gone, absent])) == 40
    assert index.remove(gone) == 0
    assert index.ntotal == 560
    hits = index.search(vectors[:40], 20, params=params)
    assert not np.isin(hits.ids, gone).any()
    assert (hits.ids >= 0).all(), "the selector must still fill all k slots with live ids"
    assert not index.contains(int(gone[0]))
    assert np.array_equal(index.ids(), np.sort(ids[40:]))
    with pytest.raises(IndexIdNotFound, match=str(gone[0])):
        index.reconstruct(int(gone[0]))


@pytest.mark.parametrize(("factory", "params"), KINDS)
def test_removed_nearest_neighbours_leave_the_exact_next_ones(factory, params, gallery) -> None:
    ids, vectors = gallery
    index = filled(factory, vectors, ids)
    query = vectors[:1]
    nearest = index.search(query, 15, params=params).ids[0]
    index.remove(nearest[:5])
    after = index.search(query, 10, params=params).ids[0]
    assert np.array_equal(after, nearest[5:15])


@pytest.mark.parametrize(("factory", "params"), KINDS)
def test_add_after_remove_revives_the_id_once_with_the_new_vector(factory, params, gallery) -> None:
    ids, vectors = gallery
    index = filled(factory, vectors, ids)
    index.remove(ids[:3])
    index.add(ids[:3], vectors[100:103])
    index.add(ids[:3], vectors[200:203])
    assert index.ntotal == 600
    assert index.contains(int(ids[0]))
    hits = index.search(vectors[200:203], 600, params=params)
    assert np.array_equal(hits.ids[:, 0], ids[:3])
    for row in hits.ids:
        live = row[row >= 0]
        assert len(live) == len(set(live.tolist())), "an id came back twice"
    np.testing.assert_allclose(index.reconstruct(int(ids[1])), vectors[201], atol=1e-6)


def test_repeated_id_in_one_add_keeps_the_last_vector() -> None:
    vectors = random_unit(3, seed=5)
    index = VectorIndex(DIM)
    index.add(np.array([4, 4, 8]), vectors)
    assert index.ntotal == 2
    np.testing.assert_allclose(index.reconstruct(4), vectors[1], atol=1e-6)


@pytest.mark.parametrize(
    ("factory", "params"), [("HNSW32", {"efSearch": 64}), ("IVF64,Flat", {"nprobe": 16})]
)
def test_approximate_search_agrees_with_exact_search(factory, params) -> None:
    vectors = clustered_unit(5000, seed=3)
    queries = clustered_unit(100, seed=30)
    ids = np.arange(5000, dtype=np.int64) + 1000
    exact = filled("Flat", vectors, ids).search(queries, 10).ids
    approx = filled(factory, vectors, ids)
    assert recall_at(approx.search(queries, 10, params=params).ids, exact) >= 0.9


def test_nprobe_reaches_the_ivf_search() -> None:
    vectors = clustered_unit(5000, seed=4)
    ids = np.arange(5000, dtype=np.int64)
    exact = filled("Flat", vectors, ids).search(vectors[:100], 10).ids
    ivf = filled("IVF64,Flat", vectors, ids)
    narrow = recall_at(ivf.search(vectors[:100], 10, params={"nprobe": 1}).ids, exact)
    wide = recall_at(ivf.search(vectors[:100], 10, params={"nprobe": 64}).ids, exact)
    assert narrow < 0.95 and wide == 1.0


def test_k_larger_than_the_index_pads_with_minus_one_and_minus_inf() -> None:
    index = VectorIndex(DIM)
    index.add(np.array([11, 12, 13]), random_unit(3, seed=2))
    hits = index.search(random_unit(2, seed=3), 5)
    assert hits.ids.shape == hits.scores.shape == (2, 5)
    assert hits.ids.dtype == np.int64 and hits.scores.dtype == np.float32
    assert set(hits.ids[0, :3].tolist()) == {11, 12, 13}
    assert (hits.ids[:, 3:] == -1).all() and np.isneginf(hits.scores[:, 3:]).all()


@pytest.mark.parametrize("factory", ["Flat", "HNSW32"])
def test_empty_index_returns_all_minus_one(factory) -> None:
    index = VectorIndex(DIM, factory=factory)
    hits = index.search(random_unit(2, seed=3), 4)
    assert (hits.ids == -1).all() and np.isneginf(hits.scores).all()
    assert index.ntotal == 0 and index.ids().size == 0 and not index.contains(0)


def test_untrained_index_says_to_train_and_how_much() -> None:
    index = VectorIndex(DIM, factory="IVF64,Flat")
    assert not index.is_trained
    with pytest.raises(IndexNotTrained, match=r"call train\(\) with at least 64 vectors"):
        index.add(np.array([1]), random_unit(1, seed=1))
    with pytest.raises(IndexNotTrained, match="not trained"):
        index.search(random_unit(1, seed=1), 3)
    with pytest.raises(IndexTrainingError, match="at least 64 training vectors; got 10"):
        index.train(random_unit(10, seed=1))


def test_training_twice_after_adding_is_refused() -> None:
    vectors = random_unit(400, seed=8)
    index = filled("IVF8,Flat", vectors, np.arange(400))
    with pytest.raises(IndexTrainingError, match="already holds 400 rows"):
        index.train(vectors)


def test_flat_and_hnsw_need_no_training() -> None:
    for factory in ("Flat", "HNSW32"):
        index = VectorIndex(DIM, factory=factory)
        index.add(np.array([1]), random_unit(1, seed=1))
        index.train(random_unit(5, seed=2))
        assert index.is_trained and index.ntotal == 1


@pytest.mark.parametrize("factory", ["NotAnIndex", "PQ7", "IDMap2,Flat"])
def test_bad_factory_strings_are_rejected(factory) -> None:
    with pytest.raises(InvalidIndexFactory, match=factory.split(",")[0]):
        VectorIndex(DIM, factory=factory)


@pytest.mark.parametrize(
    ("factory", "params", "match"),
    [
        ("Flat", {"nprobe": 4}, "unknown search parameter 'nprobe'.*allowed: none"),
        ("HNSW32", {"nprobe": 4}, "allowed: efSearch"),
        ("IVF8,Flat", {"efSearch": 4}, "allowed: nprobe"),
        ("IVF8,Flat", {"nprobe": 0}, "nprobe=0 must be an int >= 1"),
        ("IVF8,Flat", {"nprobe": 2.5}, "nprobe=2.5"),
        ("IVF8,PQ8x4fs,RFlat", {"k_factor": 0}, "k_factor=0 must be an int >= 1"),
        ("IVF8,PQ8x4fs,RFlat", {"efSearch": 4}, "allowed: k_factor, nprobe"),
    ],
)
def test_bad_search_parameters_are_rejected(factory, params, match) -> None:
    index = filled(factory, random_unit(400, seed=1), np.arange(400))
    with pytest.raises(InvalidSearchParameter, match=match):
        index.search(random_unit(1, seed=2), 3, params=params)


@pytest.mark.parametrize("k", [0, -1, 2.0, True])
def test_bad_k_is_rejected(k) -> None:
    index = filled("Flat", random_unit(4, seed=1), np.arange(4))
    with pytest.raises(InvalidSearchParameter, match="k must be an int >= 1"):
        index.search(random_unit(1, seed=2), k)


def test_single_query_vector_must_be_a_row() -> None:
    index = filled("Flat", random_unit(4, seed=1), np.arange(4))
    query = random_unit(1, seed=2)
    with pytest.raises(IndexShapeError, match=r"got \(32,\); pass queries\[None, :\]"):
        index.search(query[0], 3)
    assert index.search(query, 3).ids.shape == (1, 3)
    assert index.search(query[:0], 3).ids.shape == (0, 3)


@pytest.mark.parametrize(
    ("ids", "vectors", "match"),
    [
        (np.arange(2), random_unit(2, seed=1, dim=DIM + 1), r"\(N, 32\); got \(2, 33\)"),
        (np.arange(2), np.ones((2, DIM), np.int32), "float32.*got dtype int32"),
        (np.arange(3), random_unit(2, seed=1), "got 3 ids for 2 vectors"),
        (np.arange(4).reshape(2, 2), random_unit(2, seed=1), "1-D integer"),
        (np.array([1.0, 2.0]), random_unit(2, seed=1), "1-D integer"),
        (np.array([-1, 2]), random_unit(2, seed=1), r"\[0, 2\*\*63\); got min -1"),
        (np.arange(2), 3 * random_unit(2, seed=1), "L2-normalised.*got norms from 3"),
        (np.arange(2), np.full((2, DIM), np.nan, np.float32), "finite"),
        (np.arange(2), random_unit(2, seed=1).tolist(), "numpy array"),
    ],
)
def test_add_rejects_arrays_outside_the_contract(ids, vectors, match) -> None:
    index = VectorIndex(DIM)
    with pytest.raises(IndexShapeError, match=match):
        index.add(ids, vectors)
    assert index.ntotal == 0


def test_float64_and_strided_input_is_converted_losslessly() -> None:
    vectors = random_unit(6, seed=4).astype(np.float64)
    index = VectorIndex(DIM)
    index.add(np.arange(3, dtype=np.int32), vectors[::2])
    assert np.array_equal(index.ids(), [0, 1, 2])
    np.testing.assert_allclose(index.reconstruct(1), vectors[2], atol=1e-6)
    hits = index.search(np.asfortranarray(vectors[::2]), 1)
    assert np.array_equal(hits.ids[:, 0], [0, 1, 2])


@pytest.mark.parametrize("factory", ["Flat", "HNSW32"])
def test_random_upserts_and_removals_match_a_dict_model(factory) -> None:
    rng = np.random.default_rng(21)
    index, model = VectorIndex(DIM, factory=factory), {}
    for step in range(150):
        batch = rng.integers(0, 60, size=int(rng.integers(1, 8)))
        if rng.random() < 0.6:
            vectors = random_unit(len(batch), seed=1000 + step)
            index.add(batch, vectors)
            model.update(zip(batch.tolist(), vectors, strict=True))
        else:
            expected = len({int(i) for i in batch} & model.keys())
            assert index.remove(batch) == expected
            for image_id in batch.tolist():
                model.pop(image_id, None)
    assert np.array_equal(index.ids(), sorted(model)) and index.ntotal == len(model)
    assert [index.contains(i) for i in range(62)] == [i in model for i in range(62)]
    for image_id, vector in model.items():
        np.testing.assert_allclose(index.reconstruct(image_id), vector, atol=1e-6)
    hits = index.search(np.stack(list(model.values())), 1)
    assert np.array_equal(hits.ids[:, 0], list(model))


def test_search_restricted_to_allowed_ids_returns_k_of_them() -> None:
    rng = np.random.default_rng(3)
    vectors = rng.standard_normal((200, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    index = VectorIndex(16)
    index.add(np.arange(200, dtype=np.int64), vectors)
    index.remove(np.array([10, 12], dtype=np.int64))
    allowed = np.arange(0, 200, 5, dtype=np.int64)  # 40 ids; 10 was removed
    hits = index.search(vectors[:1], 7, allowed=allowed)
    found = hits.ids[0]
    assert len(found) == 7 and set(found) <= set(allowed.tolist()) - {10}
    exact = sorted(set(allowed.tolist()) - {10}, key=lambda i: -float(vectors[i] @ vectors[0]))
    assert found.tolist() == exact[:7]
    assert (index.search(vectors[:1], 50, allowed=allowed).ids[0] >= 0).sum() == 39
