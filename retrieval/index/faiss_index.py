"""FAISS wrapper: any index_factory type behind catalog ids, with upsert, removal and snapshots.

Contract: vectors are float32 (N, D), L2-normalised, compared by inner product; ids are int64
catalog ids >= 0. Ids live in an IndexIDMap2 around the factory-built index, so they travel
with the vectors and `reconstruct` works. Types whose rows keep their order on removal (Flat,
PQ, SQ: FAISS "flat codes") remove rows physically. Every other type (HNSW, IVF, re-ranked
ones) never removes: a removed or replaced row gets id -1 in the id map and searches exclude
it with an IDSelector. The id map is part of the FAISS file, so snapshots keep removals for free.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

# faiss's bundled stubs (faiss/__init__.pyi) lack some of its SWIG classes, attributes and
# overloads (SearchParametersHNSW, PyCallbackIOWriter, ...): those lines carry type: ignore.
import faiss
import numpy as np

from lookalike.retrieval.errors import (
    IndexCorrupt,
    IndexIdNotFound,
    IndexNotTrained,
    IndexReadOnly,
    IndexShapeError,
    IndexTrainingError,
    InvalidIndexFactory,
    InvalidSearchParameter,
)
from lookalike.retrieval.index.snapshot import ByteSink

log = logging.getLogger(__name__)

NORM_TOLERANCE = 1e-2
_DEAD = -1
_LIVE_ONLY = faiss.IDSelectorRange(0, np.iinfo(np.int64).max)
# Search-time parameters by name (efSearch, nprobe, k_factor, ...), and the type each takes.
SearchParams = dict[str, int | bool]
Allowed = dict[str, type]
_HNSW_PARAMS: Allowed = {"efSearch": int, "check_relative_distance": bool, "bounded_queue": bool}
_IVF_PARAMS: Allowed = {"nprobe": int, "max_codes": int}
_REFINE_PARAMS: Allowed = {"k_factor": int}


@dataclass(frozen=True)
class SearchHits:
    """Top-k results per query: scores descending; ids -1 (score -inf) where fewer than k."""

    scores: np.ndarray
    ids: np.ndarray


def _faiss_message(exc: RuntimeError) -> str:
    """The useful last line of a FAISS C++ exception."""
    return str(exc).strip().splitlines()[-1].split("Error: ")[-1]


def _core(index: faiss.Index) -> faiss.Index:
    """The index doing the search, below any re-ranking (RFlat) and pre-transform (OPQ, PCA)
    layers."""
    index = faiss.downcast_index(index)
    while isinstance(index, faiss.IndexPreTransform | faiss.IndexRefine):
        below = index.index if isinstance(index, faiss.IndexPreTransform) else index.base_index
        index = faiss.downcast_index(below)
    return index


def _refined(index: faiss.Index) -> bool:
    """Whether the index re-ranks its base index's candidates with exact vectors (RFlat)."""
    return isinstance(faiss.downcast_index(index), faiss.IndexRefine)


def _min_training_vectors(index: faiss.Index) -> int:
    """Fewest training vectors FAISS accepts: one per IVF list and per PQ centroid."""
    need = 1
    outer = faiss.downcast_index(index)
    if isinstance(outer, faiss.IndexPreTransform):
        chain = outer.chain
        for i in range(chain.size()):  # type: ignore[attr-defined]
            transform = faiss.downcast_VectorTransform(chain.at(i))  # type: ignore[attr-defined]
            if isinstance(transform, faiss.OPQMatrix):
                need = max(need, 256)
    core = _core(index)
    if isinstance(core, faiss.IndexIVF):
        need = max(need, core.nlist)
    pq = getattr(core, "pq", None)
    if pq is not None:
        need = max(need, pq.ksub)
    return need


def _as_vectors(vectors: np.ndarray, dim: int, *, what: str, unit: bool) -> np.ndarray:
    """`vectors` as float32 C-contiguous (N, dim), checked; float64/float16 are converted."""
    if not isinstance(vectors, np.ndarray):
        raise IndexShapeError(f"{what} must be a numpy array (N, {dim}); got {type(vectors)}")
    if vectors.ndim != 2 or vectors.shape[1] != dim:
        hint = f"; pass {what}[None, :] for one vector" if vectors.shape == (dim,) else ""
        raise IndexShapeError(f"{what} must have shape (N, {dim}); got {vectors.shape}{hint}")
    if vectors.dtype.kind != "f":
        raise IndexShapeError(f"{what} must be float32 (N, {dim}); got dtype {vectors.dtype}")
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if not np.isfinite(vectors).all():
        raise IndexShapeError(f"{what} must be finite; got NaN or inf values")
    if unit and len(vectors):
        norms = np.linalg.norm(vectors, axis=1)
        if np.abs(norms - 1.0).max() > NORM_TOLERANCE:
            raise IndexShapeError(
                f"{what} must be L2-normalised (row norms 1 +- {NORM_TOLERANCE}); got norms "
                f"from {norms.min():.4g} to {norms.max():.4g}"
            )
    return vectors


def _as_ids(ids: np.ndarray) -> np.ndarray:
    """`ids` as a 1-D int64 array of catalog ids >= 0 (other integer dtypes are converted)."""
    if not isinstance(ids, np.ndarray) or ids.ndim != 1 or ids.dtype.kind not in "iu":
        got = f"{ids.dtype} {ids.shape}" if isinstance(ids, np.ndarray) else type(ids)
        raise IndexShapeError(f"ids must be a 1-D integer (int64) array; got {got}")
    if len(ids) and (ids.min() < 0 or int(ids.max()) > np.iinfo(np.int64).max):
        raise IndexShapeError(f"ids must be in [0, 2**63); got min {ids.min()}, max {ids.max()}")
    return np.ascontiguousarray(ids, dtype=np.int64)


def _last_wins(ids: np.ndarray, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Drop all but the last occurrence of a repeated id, as sequential upserts would."""
    _, first_from_end = np.unique(ids[::-1], return_index=True)
    if len(first_from_end) == len(ids):
        return ids, vectors
    keep = np.sort(len(ids) - 1 - first_from_end)
    return ids[keep], vectors[keep]


def _checked_params(params: SearchParams, allowed: Allowed, factory: str) -> None:
    """Raise InvalidSearchParameter unless every param is allowed and of the right type."""
    for name, value in params.items():
        if name not in allowed:
            names = ", ".join(allowed) or "none"
            raise InvalidSearchParameter(
                f"unknown search parameter {name!r} for index '{factory}'; allowed: {names}"
            )
        expected = allowed[name]
        if type(value) is not expected or (expected is int and value < 1):
            wanted = "an int >= 1" if expected is int else "a bool"
            raise InvalidSearchParameter(f"search parameter {name}={value!r} must be {wanted}")


def _parameter_kind(index: faiss.Index) -> tuple[type, Allowed]:
    """The SearchParameters class of the index's core type and the params it takes."""
    core = _core(index)
    if isinstance(core, faiss.IndexHNSW):
        return faiss.SearchParametersHNSW, _HNSW_PARAMS  # type: ignore[attr-defined]
    if isinstance(core, faiss.IndexIVF):
        return faiss.SearchParametersIVF, _IVF_PARAMS
    return faiss.SearchParameters, {}


def _search_parameters(
    index: faiss.Index, factory: str, params: SearchParams, selector: faiss.IDSelector | None,
    id_map: faiss.Int64Vector,
) -> faiss.SearchParameters | None:
    """Per-call FAISS search parameters (thread-safe: the index itself is never modified)."""
    outer = faiss.downcast_index(index)
    if isinstance(outer, faiss.IndexRefine):
        return _refine_parameters(outer, factory, params, selector, id_map)
    kind, allowed = _parameter_kind(outer)
    _checked_params(params, allowed, factory)
    if not params and selector is None:
        return None
    made: faiss.SearchParameters = (kind(sel=selector, **params) if selector is not None
                                    else kind(**params))
    return made


def _refine_parameters(
    refine: faiss.IndexRefine, factory: str, params: SearchParams,
    selector: faiss.IDSelector | None,
    id_map: faiss.Int64Vector,
) -> faiss.SearchParameters | None:
    """k_factor for the re-ranking layer; the other params, and the selector, for its base.

    IndexIDMap2 translates a selector from catalog ids to rows only for the layer it wraps,
    and IndexRefine does not pass it on, so the base gets it already translated."""
    _checked_params(params, {**_REFINE_PARAMS, **_parameter_kind(refine.base_index)[1]}, factory)
    own = {name: value for name, value in params.items() if name in _REFINE_PARAMS}
    translated = (None if selector is None
                  else faiss.IDSelectorTranslated(id_map, selector))  # type: ignore[arg-type]
    rest = {name: value for name, value in params.items() if name not in _REFINE_PARAMS}
    base = _search_parameters(refine.base_index, factory, rest, translated, id_map)
    if not own and base is None:
        return None
    k_factor = float(own.get("k_factor", refine.k_factor))
    out = faiss.IndexRefineSearchParameters(  # type: ignore[call-arg]
        k_factor=k_factor, base_index_params=base)
    # The C++ struct holds bare pointers to them: keep them alive as long as it lives.
    out.referenced_objects = [base, translated]  # type: ignore[attr-defined]
    return out


class VectorIndex:
    """A FAISS index of unit vectors keyed by catalog id; safe to share between threads."""

    def __init__(self, dim: int, *, factory: str = "Flat") -> None:
        if not isinstance(dim, int) or dim < 1:
            raise IndexShapeError(f"dim must be a positive int; got {dim!r}")
        if factory.replace(" ", "").upper().startswith("IDMAP"):
            raise InvalidIndexFactory(
                f"index factory '{factory}' must not start with IDMap: ids are always mapped"
            )
        try:
            inner = faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
        except RuntimeError as exc:
            raise InvalidIndexFactory(
                f"index factory '{factory}' is not valid for dim {dim}: {_faiss_message(exc)}; "
                "examples: Flat, HNSW32, IVF256,Flat, IVF256,PQ16, OPQ16,IVF256,PQ16"
            ) from exc
        if isinstance(_core(inner), faiss.IndexIVF):
            # Rows never move in IVF here: an array map is exact.
            _core(inner).make_direct_map()  # type: ignore[attr-defined]
        self._attach(faiss.IndexIDMap2(inner), dim=dim, factory=factory)

    def _attach(self, index: faiss.IndexIDMap2, *, dim: int, factory: str,
                mapped: bool = False) -> None:
        """Adopt a FAISS IndexIDMap2 (new or read from a file) and derive the bookkeeping.

        A `mapped` index reads its vectors from the file itself: FAISS cannot grow or shrink
        them (it aborts the process), so it takes no adds and removes by marking rows dead."""
        self.dim = dim
        self.factory = factory
        self.mapped = mapped
        self._index = index
        self._lock = threading.RLock()
        fresh = faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
        self._trainable = not fresh.is_trained
        self._compacts = (not mapped and not _refined(index.index)
                          and isinstance(_core(index.index), faiss.IndexFlatCodes))
        rows = self._row_ids()
        self._dead = int(np.count_nonzero(rows == _DEAD))
        self._live = np.sort(rows[rows != _DEAD])  # kept sorted and up to date by add / remove

    @classmethod
    def read(cls, path: Path, *, factory: str, mapped: bool = False) -> VectorIndex:
        """An index from a file written by `write_to`; IndexCorrupt when it is not one.

        `mapped` memory-maps the vectors of flat-code types instead of reading them: opening
        takes milliseconds whatever the size, and the file must stay unchanged while in use
        (snapshot files are never rewritten; an unlinked one stays readable while mapped)."""
        flags = faiss.IO_FLAG_MMAP_IFC if mapped else 0
        try:
            index = faiss.read_index(str(path), flags)  # the most derived type; owns itself
        except RuntimeError as exc:
            raise IndexCorrupt(f"{path} is not a FAISS index: {_faiss_message(exc)}") from exc
        if not isinstance(index, faiss.IndexIDMap2):
            raise IndexCorrupt(f"{path} holds a {type(index).__name__}, expected IndexIDMap2")
        if index.metric_type != faiss.METRIC_INNER_PRODUCT:
            raise IndexCorrupt(f"{path} does not use the inner-product metric")
        loaded = cls.__new__(cls)
        try:
            loaded._attach(index, dim=index.d, factory=factory, mapped=mapped)
        except RuntimeError as exc:
            raise IndexCorrupt(f"{path}: factory '{factory}' is not valid: {exc}") from exc
        return loaded

    def write_to(self, sink: ByteSink) -> None:
        """Stream the FAISS serialisation (vectors, ids, removals) into `sink`."""
        with self._lock:
            faiss.write_index(self._index, faiss.PyCallbackIOWriter(sink.write))  # type: ignore[attr-defined]

    def _row_ids(self) -> np.ndarray:
        """A writable view of the id map: the catalog id of every stored row, -1 if dead."""
        id_map = self._index.id_map
        if id_map.size() == 0:
            return np.empty(0, dtype=np.int64)
        return faiss.rev_swig_ptr(id_map.data(), id_map.size())

    def _present(self, ids: np.ndarray) -> np.ndarray:
        """Which of `ids` are live: a boolean mask from a binary search of the live ids."""
        if not len(self._live):
            return np.zeros(len(ids), dtype=bool)
        at = np.minimum(np.searchsorted(self._live, ids), len(self._live) - 1)
        live: np.ndarray = self._live[at] == ids
        return live

    def _require_writable(self, action: str) -> None:
        if self.mapped:
            raise IndexReadOnly(f"cannot {action}: this index is mapped from a snapshot file "
                                "and read-only; add to a LayeredIndex around it instead")

    def _require_trained(self, action: str) -> None:
        if not self._index.is_trained:
            need = _min_training_vectors(self._index.index)
            raise IndexNotTrained(
                f"cannot {action}: index '{self.factory}' is not trained; call train() with at "
                f"least {need} vectors first (about {39 * need} for good clusters)"
            )

    @property
    def ntotal(self) -> int:
        """How many live vectors the index holds."""
        return int(self._index.ntotal) - self._dead

    @property
    def is_trained(self) -> bool:
        return bool(self._index.is_trained)

    def train(self, vectors: np.ndarray) -> None:
        """Fit the coarse quantizer / codebooks on sample vectors (a no-op for Flat and HNSW)."""
        vectors = _as_vectors(vectors, self.dim, what="training vectors", unit=True)
        need = _min_training_vectors(self._index.index)
        with self._lock:
            if not self._trainable:
                return
            self._require_writable("train")
            if self._index.ntotal:
                raise IndexTrainingError(
                    f"cannot train index '{self.factory}': it already holds "
                    f"{self._index.ntotal} rows encoded with the current training"
                )
            if len(vectors) < need:
                raise IndexTrainingError(
                    f"index '{self.factory}' needs at least {need} training vectors; "
                    f"got {len(vectors)}"
                )
            try:
                self._index.train(vectors)
            except RuntimeError as exc:
                raise IndexTrainingError(
                    f"training index '{self.factory}' failed: {_faiss_message(exc)}"
                ) from exc

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Upsert: each id ends up with exactly one vector, the last one given for it."""
        vectors = _as_vectors(vectors, self.dim, what="vectors", unit=True)
        ids = _as_ids(ids)
        if len(ids) != len(vectors):
            raise IndexShapeError(f"got {len(ids)} ids for {len(vectors)} vectors; need one each")
        ids, vectors = _last_wins(ids, vectors)
        with self._lock:
            self._require_writable("add")
            self._require_trained("add")
            present = self._present(ids)
            self._drop(ids[present])
            self._index.add_with_ids(vectors, ids)
            new = np.sort(ids[~present])
            self._live = np.insert(self._live, np.searchsorted(self._live, new), new)

    def remove(self, ids: np.ndarray) -> int:
        """Remove these ids; returns how many were present (absent ids are ignored)."""
        ids = np.unique(_as_ids(ids))
        with self._lock:
            present = ids[self._present(ids)]
            self._drop(present)
            self._live = np.delete(self._live, np.searchsorted(self._live, present))
        return len(present)

    def _drop(self, live_ids: np.ndarray) -> None:
        """Remove the rows of these live ids, physically or by marking them dead."""
        if not len(live_ids):
            return
        if self._compacts:
            removed = self._index.remove_ids(live_ids)  # type: ignore[arg-type]
        else:
            rows = self._row_ids()
            hit = np.flatnonzero(np.isin(rows, live_ids))
            rows[hit] = _DEAD
            self._dead += len(hit)
            removed = len(hit)
        assert removed == len(live_ids), f"dropped {removed} rows for {len(live_ids)} live ids"

    def live_rows(self, chunk: int = 65_536) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(ids, vectors) of the live rows in storage order, `chunk` rows at a time (vectors
        are decoded from the codes: exact for Flat, approximate for PQ / SQ)."""
        with self._lock:
            rows = self._row_ids()
            for start in range(0, len(rows), chunk):
                ids = rows[start:start + chunk].copy()
                vectors = self._index.index.reconstruct_n(start, len(ids))
                live = ids != _DEAD
                yield ids[live], vectors[live]

    def contains(self, image_id: int) -> bool:
        """Whether `image_id` is live in the index."""
        if not 0 <= image_id <= np.iinfo(np.int64).max:
            return False
        with self._lock:
            return bool(self._present(np.array([image_id], dtype=np.int64))[0])

    def ids(self) -> np.ndarray:
        """Every live id, int64, sorted ascending."""
        with self._lock:
            return self._live.copy()

    def search(self, queries: np.ndarray, k: int, *,
               params: SearchParams | None = None,
               allowed: np.ndarray | None = None) -> SearchHits:
        """Top-k ids by inner product for each row of `queries`, shape (Q, dim).

        A single vector must be passed as (1, dim). Queries need not be unit length: the
        norm of a query scales its scores but does not change its ranking.
        params: {"nprobe": n} for IVF types, {"efSearch": n} for HNSW types, plus
        {"k_factor": f} (re-rank f*k candidates) for types ending in RFlat.
        allowed: int64 catalog ids; only these are searched (a FAISS IDSelectorBatch inside
        the index search, so up to k of them come back, not k hits filtered afterwards).
        """
        queries = _as_vectors(queries, self.dim, what="queries", unit=False)
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
            raise InvalidSearchParameter(f"k must be an int >= 1; got {k!r}")
        k = int(k)
        scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
        ids = np.full((len(queries), k), -1, dtype=np.int64)
        with self._lock:
            self._require_trained("search")
            selector: faiss.IDSelector | None = _LIVE_ONLY if self._dead else None
            if allowed is not None:
                # Only catalog ids (>= 0) are allowed, so removed rows are excluded too.
                selector = faiss.IDSelectorBatch(_as_ids(allowed))
            search_params = _search_parameters(
                self._index.index, self.factory, params or {}, selector, self._index.id_map
            )
            fetch = min(k, int(self._index.ntotal))
            if fetch and len(queries):
                found_scores, found_ids = self._index.search(queries, fetch, params=search_params)
                ids[:, :fetch] = found_ids
                scores[:, :fetch] = np.where(found_ids >= 0, found_scores, -np.inf)
        return SearchHits(scores=scores, ids=ids)

    def reconstruct(self, image_id: int) -> np.ndarray:
        """The stored vector of `image_id` (approximate for PQ / SQ codes), float32 (dim,)."""
        with self._lock:
            if not self.contains(image_id):
                raise IndexIdNotFound(f"id {image_id} is not in the index ({self.ntotal} live ids)")
            return np.asarray(self._index.reconstruct(int(image_id)), dtype=np.float32)
