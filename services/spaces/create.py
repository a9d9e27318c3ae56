"""Creating spaces with descriptor options (pooling, multi-scale, PCA or learned whitening,
query expansion) and embedding the whole catalog into one, resumably."""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lookalike.retrieval.embedding.embedder import Embedder
from lookalike.retrieval.embedding.pooling import POOLING_METHODS
from lookalike.retrieval.embedding.whitening import (
    PCAWhitening,
    fit_learned_whitening,
    fit_pca_whitening,
)
from lookalike.retrieval.images import IMAGE_SUFFIXES
from lookalike.retrieval.models.engines import check_engine
from lookalike.retrieval.models.registry import file_sha256, get_backbone, resolve_weights
from lookalike.retrieval.models.specs import DEFAULT_BACKBONE
from lookalike.services.catalog import embeddings as embedding_queries
from lookalike.services.catalog import images as image_queries
from lookalike.services.catalog import spaces as space_queries
from lookalike.services.catalog.documents import SpaceOptions
from lookalike.services.catalog.models import Space
from lookalike.services.catalog.schemas import SpaceCreate
from lookalike.services.errors import InvalidRequest
from lookalike.services.ingest.prepare import PreparedImage, prepare_config, prepare_file
from lookalike.services.runtime import Runtime
from lookalike.services.spaces.engines import default_engine
from lookalike.services.spaces.files import hold_space_files
from lookalike.services.spaces.lookup import build_embedder
from lookalike.services.spaces.whitening_store import store_whitening
from lookalike.services.storage.layout import DataLayout

logger = logging.getLogger(__name__)

MULTISCALE = (1.0, 1 / math.sqrt(2), 0.5)
_PAGE = 5000


# The stored options' defaults are the definition's: spelled once, in SpaceOptions.
_STORED = SpaceOptions()
BACKENDS = ("faiss", "milvus")


@dataclass(frozen=True)
class SpaceDefinition:
    """Everything that defines a space besides its name: descriptor and query-time options."""

    backbone: str = DEFAULT_BACKBONE
    weights: Path | None = None
    pooling: str = "gap"
    gem_p: float = _STORED.gem_p
    input_size: int | None = None
    multiscale: bool = False
    whiten_dim: int | None = None
    whiten_images: int = 3000
    whiten_from: Path | None = None
    whiten_shrinkage: float = 1.0
    whiten_labels: bool = False
    qe: bool = _STORED.qe
    qe_n: int = _STORED.qe_n
    qe_alpha: float = _STORED.qe_alpha
    dba_n: int = _STORED.dba_n
    dba_shortlist: int = _STORED.dba_shortlist
    index_factory: str = _STORED.index_factory
    backend: str = _STORED.backend
    engine: str | None = None
    verify: bool = _STORED.verify
    verify_n: int = _STORED.verify_n

    def options(self, layout: DataLayout) -> SpaceOptions:
        """The options stored with the space (whitening fields are added once fitted); a
        weight file is recorded as `layout` records paths."""
        return SpaceOptions(
            weights_file=layout.stored(self.weights.resolve()) if self.weights else None,
            gem_p=self.gem_p, scales=list(MULTISCALE if self.multiscale else (1.0,)),
            qe=self.qe, qe_n=self.qe_n, qe_alpha=self.qe_alpha, dba_n=self.dba_n,
            dba_shortlist=self.dba_shortlist, index_factory=self.index_factory,
            backend=self.backend, verify=self.verify, verify_n=self.verify_n)


def _check(definition: SpaceDefinition) -> None:
    if definition.backend not in BACKENDS:
        raise InvalidRequest(f"unknown vector backend '{definition.backend}'; allowed: "
                             f"{', '.join(BACKENDS)}")
    if definition.pooling not in POOLING_METHODS:
        raise InvalidRequest(f"unknown pooling '{definition.pooling}'; allowed: "
                             f"{', '.join(POOLING_METHODS)}")
    if (definition.qe_n < 1 or definition.dba_n < 0 or definition.dba_shortlist < 1
            or definition.gem_p <= 0 or not 1 <= definition.verify_n <= 200):
        raise InvalidRequest("qe_n must be >= 1, dba_n >= 0, dba_shortlist >= 1, gem_p > 0 "
                             "and verify_n 1..200")
    if definition.input_size is not None and not 16 <= definition.input_size <= 1024:
        raise InvalidRequest(f"input_size must be 16..1024 pixels, got {definition.input_size}")
    if definition.whiten_labels and definition.whiten_dim is None:
        raise InvalidRequest("--whiten-labels needs a dimension: add --whiten D (e.g. one less "
                             "than the number of labels)")
    if definition.whiten_labels and definition.whiten_shrinkage != 1.0:
        raise InvalidRequest("--whiten-shrinkage applies to PCA whitening only; learned "
                             "whitening (--whiten-labels) keeps its directions unscaled")


def create_space(runtime: Runtime, *, name: str, definition: SpaceDefinition,
                 make_default: bool = False) -> Space:
    """Add a space; with `whiten_dim` the PCA whitening is fitted first (catalog or folder).
    Without an engine it gets the default one (`spaces.engines.default_engine`); without an
    input size, the backbone's (a network fine-tuned at another size needs its own)."""
    _check(definition)
    spec = get_backbone(definition.backbone)
    weights = resolve_weights(spec, explicit=definition.weights,
                              torch_home=runtime.settings.torch_home)
    sha256 = file_sha256(weights)
    engine = definition.engine
    if engine is None:
        engine = default_engine(spec=spec, weights=weights, weights_sha256=sha256,
                                settings=runtime.settings)
    check_engine(engine)
    options = definition.options(runtime.settings.layout).model_copy(
        update={"input_size": definition.input_size or spec.weights.input_size, "engine": engine,
                "fp32_stem": spec.fp32_stem, "int8_fp32_stem": spec.int8_fp32_stem})
    data = SpaceCreate(name=name, backbone=spec.name, weights_sha256=sha256,
                       layer=spec.feature_layer, pooling=definition.pooling, whitening=None,
                       dim=spec.dim, options=options, make_default=make_default)
    if definition.whiten_dim is None:
        return _insert_space(runtime, data, whitening=None)
    data, whitening = _with_whitening(runtime, data, definition)
    return _insert_space(runtime, data, whitening=whitening)


def _with_whitening(runtime: Runtime, data: SpaceCreate, definition: SpaceDefinition
                    ) -> tuple[SpaceCreate, PCAWhitening]:
    """The space's whitening, fitted (not stored yet), and the space recording it."""
    unsaved = Space(**data.model_dump(exclude={"make_default", "options"}), options=data.options)
    raw = build_embedder(unsaved, settings=runtime.settings)
    whitening, fitted = _fit_whitening(runtime, raw, definition)
    prefix = "lw" if definition.whiten_labels else "pca"
    return data.model_copy(update={"options": data.options.model_copy(update=fitted),
                                   "whitening": f"{prefix}{whitening.output_dim}",
                                   "dim": whitening.output_dim}), whitening


def _insert_space(runtime: Runtime, data: SpaceCreate, *,
                  whitening: PCAWhitening | None) -> Space:
    """Store the whitening file and insert the space, both under the lock on space files
    (spaces.files): a space deleted meanwhile cannot remove the file this one names."""
    with runtime.session() as session:
        hold_space_files(session)
        if whitening is not None:
            _, sha = store_whitening(whitening, settings=runtime.settings)
            data = data.model_copy(update={"options": data.options.model_copy(
                update={"whitening_sha256": sha})})
        space = space_queries.create_space(session=session, data=data)
        session.commit()
        session.refresh(space)
        session.expunge(space)
    return space


def _fit_whitening(runtime: Runtime, embedder: Embedder, definition: SpaceDefinition
                   ) -> tuple[PCAWhitening, dict]:
    """The space's whitening, PCA or learned from labels, and the options that record what it
    was fitted on."""
    paths, labels = _whitening_images(runtime, definition)
    if len(paths) > definition.whiten_images:
        step = len(paths) / definition.whiten_images
        picked = [int(i * step) for i in range(definition.whiten_images)]
        paths, labels = [paths[i] for i in picked], [labels[i] for i in picked]
    embedded = [(key, v) for key, v, _ in embed_files(runtime, embedder, list(enumerate(paths)))
                if v is not None]
    if len(embedded) <= 1:
        raise InvalidRequest("whitening needs at least 2 images; ingest some first or give "
                             "--whiten-from DIR")
    vectors = np.stack([v for _, v in embedded])
    source = str(definition.whiten_from.resolve()) if definition.whiten_from else "catalog"
    fitted = {"whitening_fitted_on": len(vectors), "whitening_from": source}
    if not definition.whiten_labels:
        return (fit_pca_whitening(vectors, dim=definition.whiten_dim,
                                  shrinkage=definition.whiten_shrinkage),
                {"whitening_method": "pca", **fitted})
    names = np.array([labels[key] for key, _ in embedded])
    return (fit_learned_whitening(vectors, names, dim=definition.whiten_dim),
            {"whitening_method": "learned", "whitening_labels": len(set(names.tolist())),
             **fitted})


def _whitening_images(runtime: Runtime, definition: SpaceDefinition
                      ) -> tuple[list[str], list[str | None]]:
    """(files, labels) to learn the whitening from: a folder's images labelled by their
    sub-folder, or the catalog's images with their labels; with `whiten_labels`, only the
    labelled ones."""
    if definition.whiten_from is not None:
        root = Path(definition.whiten_from)
        files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        found = [(str(p), p.parent.name if p.parent != root else None) for p in files]
    elif definition.whiten_labels:
        with runtime.session() as session:
            found = [(str(runtime.settings.layout.resolve(path)), label) for _, path, label
                     in image_queries.labelled_images(session=session)]
    else:
        found = [(path, None) for _, path in _catalog_files(runtime, exclude=set())]
    if definition.whiten_labels:
        found = [(path, label) for path, label in found if label is not None]
        if len({label for _, label in found}) < 2:
            raise InvalidRequest(
                "learned whitening (--whiten-labels) needs images of at least 2 labels: put "
                "them in one sub-folder per label under --whiten-from, or ingest them with "
                "--label-from-dir")
    return [path for path, _ in found], [label for _, label in found]


def _catalog_files(runtime: Runtime, *, exclude: set[int]) -> list[tuple[int, str]]:
    """(image id, stored file) of every embedded catalog image not in `exclude`."""
    found, offset, layout = [], 0, runtime.settings.layout
    with runtime.session() as session:
        while page := image_queries.list_images(session=session, status="embedded",
                                                offset=offset, limit=_PAGE):
            found += [(i.id, str(layout.resolve(i.stored_path))) for i in page
                      if i.stored_path and i.id not in exclude]
            offset += len(page)
    return found


def embed_files(runtime: Runtime, embedder: Embedder, jobs: list[tuple[int, str]]
                ) -> Iterator[tuple[int, np.ndarray | None, PreparedImage | None]]:
    """(job key, vector or None, PreparedImage) per stored file, batched with decode workers."""
    prepare = functools.partial(prepare_file, config=prepare_config(runtime, embedder))
    for batch in embedder.embed_stream(jobs, prepare):
        for payload, vector in zip(batch.payloads, batch.vectors, strict=True):
            prepared = payload if isinstance(payload, PreparedImage) else None
            key = prepared.position if prepared is not None else -1
            yield key, vector, prepared


def commit_vectors(runtime: Runtime, space: Space, ids: list[int], vectors: list[bytes]) -> int:
    """Write whole-image vectors (float32 little-endian) of the space in one transaction."""
    if not ids:
        return 0
    with runtime.session() as session:
        written = embedding_queries.add_embeddings(session=session, space_id=space.id,
                                                   image_ids=ids, vectors=vectors)
        session.commit()
    return written
