"""PCA whitening learned from a set of descriptors: centre, rotate, rescale, reduce, renormalise.

Whitening decorrelates the components of CNN descriptors and evens out their variances, which
downweights the co-occurring (bursty) activations that dominate raw inner products; it usually
raises retrieval mAP and allows a smaller dimension. A space stores it with `to_bytes`.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lookalike.retrieval.errors import ArrayShapeError, WhiteningError

__all__ = ["PCAWhitening", "apply", "fit_pca_whitening"]

_CHUNK_ROWS = 16384
_FIELDS = ("mean", "projection", "eigenvalues")


@dataclass(frozen=True)
class PCAWhitening:
    """x -> (x - mean) @ projection; projection columns are scaled principal directions."""

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


def _covariance(vectors: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """Sample covariance (D, D) in float64, accumulated by chunks of rows to bound memory."""
    dim = vectors.shape[1]
    scatter = np.zeros((dim, dim), dtype=np.float64)
    for start in range(0, len(vectors), _CHUNK_ROWS):
        centred = vectors[start : start + _CHUNK_ROWS].astype(np.float64) - mean
        scatter += centred.T @ centred
    return scatter / (len(vectors) - 1)


def _as_descriptors(vectors: np.ndarray) -> np.ndarray:
    """`vectors` as a 2-D float array, or a clear error."""
    matrix = np.asarray(vectors)
    if matrix.ndim != 2 or not np.issubdtype(matrix.dtype, np.floating):
        raise ArrayShapeError(
            f"descriptors must be a float (N, D) array, got {matrix.dtype} {matrix.shape}"
        )
    return matrix


def fit_pca_whitening(
    vectors: np.ndarray, *, dim: int | None = None, eps: float = 1e-6, shrinkage: float = 1.0
) -> PCAWhitening:
    """Learn PCA whitening to `dim` components (default min(N-1, D)) from (N, D) descriptors.

    Component i is divided by sqrt(eigenvalue_i ** shrinkage + eps): shrinkage 1 gives unit
    variance (full whitening), 0.5 square-root whitening, 0 a plain PCA rotation.
    """
    matrix = _as_descriptors(vectors)
    count, width = matrix.shape
    limit = min(count - 1, width)
    dim = limit if dim is None else dim
    if not 1 <= dim <= limit:
        raise WhiteningError(
            f"whitening dimension {dim} is not possible from {count} vectors of dimension "
            f"{width}; allowed: 1..{limit} (at most N-1 and D)"
        )
    if not 0.0 <= shrinkage <= 1.0:
        raise WhiteningError(f"shrinkage {shrinkage} is outside the allowed range 0..1")
    mean = matrix.mean(axis=0, dtype=np.float64)
    eigenvalues, eigenvectors = np.linalg.eigh(_covariance(matrix, mean))
    order = np.argsort(eigenvalues)[::-1][:dim]
    eigenvalues = np.clip(eigenvalues[order], 0.0, None)
    directions = eigenvectors[:, order]
    strongest = np.abs(directions).argmax(axis=0)
    directions *= np.sign(directions[strongest, np.arange(dim)])
    projection = directions / np.sqrt(eigenvalues**shrinkage + eps)
    return _checked(mean, projection, eigenvalues)


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
