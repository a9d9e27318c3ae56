"""Whitening learned from a set of descriptors: centre, rotate, rescale, reduce, renormalise.

PCA whitening decorrelates the components of CNN descriptors and evens out their variances,
which downweights the co-occurring (bursty) activations that dominate raw inner products.
Learned whitening (Lw, Radenović et al.) uses labels instead: it whitens away what images of
one label differ by, then keeps the directions along which the labels spread. Both are one
linear map, stored by a space with `to_bytes`.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lookalike.retrieval.errors import ArrayShapeError, WhiteningError

__all__ = ["PCAWhitening", "apply", "fit_learned_whitening", "fit_pca_whitening"]

_CHUNK_ROWS = 16384
_FIELDS = ("mean", "projection", "eigenvalues")


@dataclass(frozen=True)
class PCAWhitening:
    """x -> (x - mean) @ projection; `eigenvalues` are the variances along the kept directions
    (of the descriptors for PCA, of the whitened descriptors for learned whitening)."""

    mean: np.ndarray
    projection: np.ndarray
    eigenvalues: np.ndarray

    @property
    def input_dim(self) -> int:
        """Dimension D of the descriptors it takes."""
        return int(self.projection.shape[0])

    @property
    def output_dim(self) -> int:
        """Dimension d of the descriptors it returns."""
        return int(self.projection.shape[1])

    def to_bytes(self) -> bytes:
        """The whitening as an .npz archive in memory (no pickles)."""
        buffer = io.BytesIO()
        np.savez(buffer, mean=self.mean, projection=self.projection, eigenvalues=self.eigenvalues)
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> PCAWhitening:
        """A whitening written by `to_bytes`, checked for the fields and shapes it needs."""
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as archive:
                arrays = {name: archive[name] for name in _FIELDS}
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
            raise WhiteningError(
                f"not a stored whitening (an .npz with {', '.join(_FIELDS)}): {exc}"
            ) from exc
        return _checked(**arrays)

    def save(self, path: Path) -> None:
        """Write the whitening to an .npz file."""
        Path(path).write_bytes(self.to_bytes())

    @classmethod
    def load(cls, path: Path) -> PCAWhitening:
        """Read a whitening written by `save`."""
        return cls.from_bytes(Path(path).read_bytes())


def _checked(mean: np.ndarray, projection: np.ndarray, eigenvalues: np.ndarray) -> PCAWhitening:
    """A PCAWhitening whose arrays have consistent shapes, as float32."""
    if (
        mean.ndim != 1
        or projection.ndim != 2
        or projection.shape[0] != mean.shape[0]
        or eigenvalues.shape != (projection.shape[1],)
    ):
        raise WhiteningError(
            f"inconsistent whitening shapes: mean {mean.shape}, projection {projection.shape}, "
            f"eigenvalues {eigenvalues.shape}; expected (D,), (D, d) and (d,)"
        )
    return PCAWhitening(
        mean=np.ascontiguousarray(mean, dtype=np.float32),
        projection=np.ascontiguousarray(projection, dtype=np.float32),
        eigenvalues=np.ascontiguousarray(eigenvalues, dtype=np.float32),
    )


def _scatter(vectors: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """Sum of (x - mean)(x - mean)^T over rows, (D, D) float64, by chunks to bound memory."""
    dim = vectors.shape[1]
    scatter = np.zeros((dim, dim), dtype=np.float64)
    for start in range(0, len(vectors), _CHUNK_ROWS):
        centred = vectors[start : start + _CHUNK_ROWS].astype(np.float64) - mean
        scatter += centred.T @ centred
    return scatter


def _covariance(vectors: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """Sample covariance (D, D) in float64."""
    return _scatter(vectors, mean) / (len(vectors) - 1)


def _as_descriptors(vectors: np.ndarray) -> np.ndarray:
    """`vectors` as a 2-D float array, or a clear error."""
    matrix = np.asarray(vectors)
    if matrix.ndim != 2 or not np.issubdtype(matrix.dtype, np.floating):
        raise ArrayShapeError(
            f"descriptors must be a float (N, D) array, got {matrix.dtype} {matrix.shape}"
        )
    return matrix


def _checked_dim(dim: int | None, limit: int, count: int, width: int) -> int:
    """`dim` (default `limit`) if 1 <= dim <= limit, else a WhiteningError that says why."""
    dim = limit if dim is None else dim
    if not 1 <= dim <= limit:
        raise WhiteningError(
            f"whitening dimension {dim} is not possible from {count} vectors of dimension "
            f"{width}; allowed: 1..{limit} (at most N-1 and D)"
        )
    return dim


def _strongest(matrix: np.ndarray, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """The `dim` largest eigenvalues (clipped at 0) of a symmetric matrix and their unit
    eigenvectors as columns, each signed so its largest component is positive (deterministic)."""
    eigenvalues, eigenvectors = np.linalg.eigh(matrix)
    order = np.argsort(eigenvalues)[::-1][:dim]
    directions = eigenvectors[:, order]
    strongest = np.abs(directions).argmax(axis=0)
    directions *= np.sign(directions[strongest, np.arange(dim)])
    return np.clip(eigenvalues[order], 0.0, None), directions


def fit_pca_whitening(
    vectors: np.ndarray, *, dim: int | None = None, eps: float = 1e-6, shrinkage: float = 1.0
) -> PCAWhitening:
    """Learn PCA whitening to `dim` components (default min(N-1, D)) from (N, D) descriptors.

    Component i is divided by sqrt(eigenvalue_i ** shrinkage + eps): shrinkage 1 gives unit
    variance (full whitening), 0.5 square-root whitening, 0 a plain PCA rotation.
    """
    matrix = _as_descriptors(vectors)
    count, width = matrix.shape
    dim = _checked_dim(dim, min(count - 1, width), count, width)
    if not 0.0 <= shrinkage <= 1.0:
        raise WhiteningError(f"shrinkage {shrinkage} is outside the allowed range 0..1")
    mean = matrix.mean(axis=0, dtype=np.float64)
    eigenvalues, directions = _strongest(_covariance(matrix, mean), dim)
    projection = directions / np.sqrt(eigenvalues**shrinkage + eps)
    return _checked(mean, projection, eigenvalues)


def _within_label_covariance(matrix: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Mean over all rows of (x - its label's mean)(x - its label's mean)^T, (D, D) float64."""
    total = np.zeros((matrix.shape[1],) * 2, dtype=np.float64)
    for label in np.unique(labels):
        members = matrix[labels == label]
        total += _scatter(members, members.mean(axis=0, dtype=np.float64))
    return total / len(matrix)


def fit_learned_whitening(
    vectors: np.ndarray, labels: np.ndarray, *, dim: int | None = None, ridge: float = 0.1
) -> PCAWhitening:
    """Learn whitening from (N, D) descriptors and their N labels, images of one label being
    matches (Radenović, Tolias, Chum: learned whitening, Lw).

    The within-label covariance, plus `ridge` x its mean eigenvalue on the diagonal so that few
    images per label stay stable, is whitened to the identity; then the `dim` directions
    (default min(N-1, D)) along which all descriptors vary most in that space are kept,
    unscaled. Labels separate along few directions, so a small `dim` is usually best.
    """
    matrix = _as_descriptors(vectors)
    labels = np.asarray(labels)
    count, width = matrix.shape
    if labels.shape != (count,):
        raise WhiteningError(f"{labels.shape[0] if labels.ndim else 0} labels for {count} "
                             "descriptors; give one label per descriptor")
    names, sizes = np.unique(labels, return_counts=True)
    if len(names) < 2 or sizes.max() < 2:
        raise WhiteningError(
            f"learned whitening needs at least 2 labels and a label with 2 or more images; got "
            f"{len(names)} labels, the largest with {sizes.max() if len(sizes) else 0} images"
        )
    if ridge < 0:
        raise WhiteningError(f"ridge {ridge} must be >= 0")
    dim = _checked_dim(dim, min(count - 1, width), count, width)
    within = _within_label_covariance(matrix, labels)
    within += ridge * np.trace(within) / width * np.eye(width)
    values, bases = np.linalg.eigh(within)
    if values.min() <= 1e-12 * values.max():
        raise WhiteningError("the within-label covariance is singular; use a ridge above 0 "
                             "or more images per label")
    inverse_root = (bases / np.sqrt(values)) @ bases.T
    mean = matrix.mean(axis=0, dtype=np.float64)
    spread = inverse_root @ _covariance(matrix, mean) @ inverse_root
    eigenvalues, directions = _strongest(spread, dim)
    return _checked(mean, inverse_root @ directions, eigenvalues)


def apply(whitening: PCAWhitening, vectors: np.ndarray, *, normalize: bool = True) -> np.ndarray:
    """Whiten (N, D) descriptors to float32 (N, d), L2-normalised unless `normalize` is False."""
    matrix = _as_descriptors(vectors)
    if matrix.shape[1] != whitening.input_dim:
        raise ArrayShapeError(
            f"descriptors have dimension {matrix.shape[1]}; the whitening expects "
            f"{whitening.input_dim}"
        )
    out = (matrix.astype(np.float32) - whitening.mean) @ whitening.projection
    if normalize:
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        out /= np.maximum(norms, np.finfo(np.float32).tiny)
    return np.ascontiguousarray(out, dtype=np.float32)
