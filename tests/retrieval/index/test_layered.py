"""A snapshot mapped from its file plus an in-memory delta must behave as one ordinary index."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lookalike.retrieval.errors import IndexReadOnly
from lookalike.retrieval.index.faiss_index import VectorIndex
from lookalike.retrieval.index.layered import LayeredIndex, mappable
from lookalike.retrieval.index.persistence import load_latest_snapshot, save_snapshot

DIM = 16


def unit(n: int, seed: int) -> np.ndarray:
    rows = np.random.default_rng(seed).standard_normal((n, DIM))
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def filled(n: int = 400) -> VectorIndex:
    index = VectorIndex(DIM, factory="Flat")
    index.add(np.arange(n, dtype=np.int64) * 2, unit(n, seed=0))
    return index


def apply_changes(index: VectorIndex | LayeredIndex) -> None:
    """New ids, replaced base ids, removed base ids, and an id added then removed again."""
    index.add(np.array([1001, 1003, 4, 6]), unit(4, seed=1))
    index.remove(np.array([0, 8, 1003, 999]))
    index.add(np.array([6, 1005]), unit(2, seed=2))


def assert_same(layered: LayeredIndex, reference: VectorIndex) -> None:
    assert layered.ntotal == reference.ntotal
    np.testing.assert_array_equal(layered.ids(), reference.ids())
    queries = np.concatenate([unit(20, seed=3), unit(4, seed=1), unit(2, seed=2)])
    got, want = layered.search(queries, 10), reference.search(queries, 10)
    np.testing.assert_array_equal(got.ids, want.ids)
    np.testing.assert_allclose(got.scores, want.scores, atol=1e-6)
    replaced_or_new = [i for i in (6, 1001, 1005) if reference.contains(i)]
    for image_id in [*reference.ids()[::37], *replaced_or_new]:
        np.testing.assert_allclose(layered.reconstruct(image_id), reference.reconstruct(image_id))


@pytest.fixture
def loaded(tmp_path: Path) -> LayeredIndex:
    save_snapshot(filled(), tmp_path, watermark=7)
    index, manifest = load_latest_snapshot(tmp_path)
    assert isinstance(index, LayeredIndex) and index.base.mapped
    assert manifest.watermark == 7
    return index


def test_a_flat_snapshot_opens_mapped_and_answers_like_the_index_saved(
    loaded: LayeredIndex,
) -> None:
    assert_same(loaded, filled())


def test_changes_after_the_snapshot_give_the_same_answers_as_an_ordinary_index(
    loaded: LayeredIndex,
) -> None:
    reference = filled()
    apply_changes(loaded)
    apply_changes(reference)
    assert_same(loaded, reference)
    assert not loaded.contains(0) and not loaded.contains(1003) and loaded.contains(1005)


def test_a_snapshot_of_the_layers_holds_both_and_opens_again(
    loaded: LayeredIndex, tmp_path: Path
) -> None:
    apply_changes(loaded)
    save_snapshot(loaded, tmp_path / "again", watermark=9)
    reopened, manifest = load_latest_snapshot(tmp_path / "again")
    reference = filled()
    apply_changes(reference)
    assert manifest.ntotal == reference.ntotal
    assert_same(reopened, reference)


def test_the_mapped_base_refuses_writes_instead_of_crashing(loaded: LayeredIndex) -> None:
    with pytest.raises(IndexReadOnly, match="read-only"):
        loaded.base.add(np.array([5000]), unit(1, seed=4))


def test_a_mapped_snapshot_keeps_answering_after_its_file_is_pruned(
    loaded: LayeredIndex, tmp_path: Path
) -> None:
    for path in tmp_path.iterdir():
        path.unlink()
    assert loaded.search(unit(1, seed=5), 3).ids[0][0] >= 0


@pytest.mark.parametrize("factory", ["HNSW16", "IVF8,Flat", "PCA8,Flat", "IVF8,PQ8x4fs,RFlat"])
def test_graph_list_and_transform_types_load_into_memory(tmp_path: Path, factory: str) -> None:
    assert not mappable(factory, DIM)
    index = VectorIndex(DIM, factory=factory)
    index.train(unit(400, seed=6))
    index.add(np.arange(400, dtype=np.int64), unit(400, seed=6))
    save_snapshot(index, tmp_path, watermark=1)
    loaded, _ = load_latest_snapshot(tmp_path)
    assert isinstance(loaded, VectorIndex) and not loaded.mapped
