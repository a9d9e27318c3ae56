"""PCA and learned whitening: dimensions, unit variance, invertibility, storage and the errors
they raise."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lookalike.retrieval.embedding.whitening import (
    PCAWhitening,
    apply,
    fit_learned_whitening,
    fit_pca_whitening,
)
from lookalike.retrieval.errors import ArrayShapeError, WhiteningError
from lookalike.retrieval.evaluation.metrics import exact_search, labels_relevance, score_rankings


def correlated(n: int, dim: int, seed: int) -> np.ndarray:
    """Unit vectors with strongly unequal, correlated components (like CNN descriptors)."""
    rng = np.random.default_rng(seed)
    mixing = rng.standard_normal((dim, dim)) * np.geomspace(10, 0.1, dim)[:, None]
    rows = rng.standard_normal((n, dim)) @ mixing + 3.0
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def vectors() -> np.ndarray:
    return correlated(500, 16, seed=0)


def test_output_has_the_asked_dimension_and_the_array_contract(vectors: np.ndarray) -> None:
    whitening = fit_pca_whitening(vectors, dim=6)
    assert (whitening.input_dim, whitening.output_dim) == (16, 6)
    assert whitening.mean.shape == (16,) and whitening.eigenvalues.shape == (6,)
    out = apply(whitening, vectors)
    assert out.shape == (500, 6) and out.dtype == np.float32 and out.flags.c_contiguous
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-5)
    assert np.all(np.diff(whitening.eigenvalues) <= 0)


def test_full_whitening_decorrelates_to_unit_variance(vectors: np.ndarray) -> None:
    raw = apply(fit_pca_whitening(vectors, dim=8), vectors, normalize=False)
    covariance = np.cov(raw, rowvar=False)
    np.testing.assert_allclose(covariance, np.eye(8), atol=1e-3)
    np.testing.assert_allclose(raw.mean(axis=0), 0.0, atol=1e-4)


def test_shrinkage_keeps_the_order_of_variances(vectors: np.ndarray) -> None:
    half = apply(fit_pca_whitening(vectors, dim=8, shrinkage=0.5), vectors, normalize=False)
    variances = half.var(axis=0, ddof=1)
    assert np.all(np.diff(variances) < 0)  # sqrt-whitening evens variances, not fully
    rotated = apply(fit_pca_whitening(vectors, dim=8, shrinkage=0.0), vectors, normalize=False)
    np.testing.assert_allclose(
        rotated.var(axis=0, ddof=1), fit_pca_whitening(vectors, dim=8).eigenvalues, rtol=1e-3
    )


def test_full_dimension_is_an_invertible_linear_map(vectors: np.ndarray) -> None:
    whitening = fit_pca_whitening(vectors, dim=16)
    out = apply(whitening, vectors, normalize=False).astype(np.float64)
    recovered = out @ np.linalg.pinv(whitening.projection.astype(np.float64))
    np.testing.assert_allclose(recovered, vectors - whitening.mean, atol=1e-4)


def test_whitening_helps_retrieval_when_noise_dominates_a_few_components() -> None:
    # Class signal lives in weak components; a few strong components carry only noise.
    rng = np.random.default_rng(5)
    labels = np.repeat(np.arange(10), 30)
    centres = rng.standard_normal((10, 12)) * 0.3
    signal = centres[labels] + 0.05 * rng.standard_normal((300, 12))
    noise = 3.0 * rng.standard_normal((300, 4))
    rows = np.hstack([noise, signal])
    raw = (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)
    whitened = apply(fit_pca_whitening(raw), raw)
    relevance = labels_relevance(labels, labels, exclude_self=True)

    def map_of(space: np.ndarray) -> float:
        _, ranking = exact_search(space, space, 50, exclude_self=True)
        return score_rankings(ranking, relevance).map

    assert map_of(whitened) > map_of(raw) + 0.2


def test_bytes_and_file_round_trip(vectors: np.ndarray, tmp_path: Path) -> None:
    whitening = fit_pca_whitening(vectors, dim=5, shrinkage=0.5)
    again = PCAWhitening.from_bytes(whitening.to_bytes())
    np.testing.assert_array_equal(apply(again, vectors), apply(whitening, vectors))
    whitening.save(tmp_path / "whitening.npz")
    loaded = PCAWhitening.load(tmp_path / "whitening.npz")
    np.testing.assert_array_equal(loaded.projection, whitening.projection)


def test_fitting_is_deterministic(vectors: np.ndarray) -> None:
    first, second = fit_pca_whitening(vectors, dim=4), fit_pca_whitening(vectors.copy(), dim=4)
    np.testing.assert_array_equal(first.projection, second.projection)


def test_dimension_is_limited_by_samples_and_width(vectors: np.ndarray) -> None:
    with pytest.raises(WhiteningError, match=r"dimension 17 .* allowed: 1..16"):
        fit_pca_whitening(vectors, dim=17)
    with pytest.raises(WhiteningError, match=r"from 5 vectors .* allowed: 1..4 \(at most N-1"):
        fit_pca_whitening(vectors[:5], dim=5)
    assert fit_pca_whitening(vectors[:5]).output_dim == 4  # the default fits the samples
    with pytest.raises(WhiteningError, match="shrinkage 2 is outside"):
        fit_pca_whitening(vectors, shrinkage=2)


def test_wrong_inputs_are_explained(vectors: np.ndarray) -> None:
    whitening = fit_pca_whitening(vectors, dim=4)
    with pytest.raises(ArrayShapeError, match="dimension 8; the whitening expects 16"):
        apply(whitening, vectors[:, :8])
    with pytest.raises(ArrayShapeError, match=r"float \(N, D\) array"):
        fit_pca_whitening(vectors[0])
    with pytest.raises(WhiteningError, match="not a stored whitening"):
        PCAWhitening.from_bytes(b"PK\x03\x04 broken")


def nuisance_and_labels(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Ten labels apart along 3 weak axes; 4 strong axes vary only within each label."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(10), 40)
    centres = rng.standard_normal((10, 3))
    signal = centres[labels] + 0.3 * rng.standard_normal((400, 3))
    rows = np.hstack([1.5 * rng.standard_normal((400, 4)), signal])
    return rows.astype(np.float32), labels


def map_of(space: np.ndarray, labels: np.ndarray) -> float:
    _, ranking = exact_search(space, space, 100, exclude_self=True)
    return score_rankings(ranking, labels_relevance(labels, labels, exclude_self=True)).map


def test_learned_whitening_keeps_the_directions_labels_differ_along() -> None:
    rows, labels = nuisance_and_labels(seed=2)
    learned = fit_learned_whitening(rows, labels, dim=3)
    pca = fit_pca_whitening(rows, dim=3)
    weight = np.linalg.norm(learned.projection, axis=1)
    assert weight[:4].max() < 0.1 * weight[4:].min()  # the label axes, not the strong nuisance
    assert np.all(np.diff(learned.eigenvalues) <= 0)
    raw = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    assert map_of(apply(learned, rows), labels) > map_of(raw, labels) + 0.3
    assert map_of(apply(pca, rows), labels) < map_of(raw, labels)


def test_learned_whitening_makes_the_within_label_covariance_the_identity() -> None:
    rows, labels = nuisance_and_labels(seed=3)
    out = apply(fit_learned_whitening(rows, labels, ridge=0.0), rows, normalize=False)
    centred = out - np.stack([out[labels == label].mean(axis=0) for label in labels])
    np.testing.assert_allclose(centred.T @ centred / len(out), np.eye(7), atol=1e-3)


def test_learned_whitening_refuses_labels_it_cannot_learn_from() -> None:
    rows, labels = nuisance_and_labels(seed=4)
    with pytest.raises(WhiteningError, match="at least 2 labels"):
        fit_learned_whitening(rows, np.zeros(len(rows)))
    with pytest.raises(WhiteningError, match="at least 2 labels and a label with 2 or more"):
        fit_learned_whitening(rows[:3], np.arange(3))
    with pytest.raises(WhiteningError, match="399 labels for 400 descriptors"):
        fit_learned_whitening(rows, labels[1:])
    with pytest.raises(WhiteningError, match="ridge -1"):
        fit_learned_whitening(rows, labels, ridge=-1)
    with pytest.raises(WhiteningError, match=r"dimension 8 .* allowed: 1..7"):
        fit_learned_whitening(rows, labels, dim=8)
