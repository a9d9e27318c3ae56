"""Embedding spaces: the default one from settings, lookup by name, the model behind each."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from sqlalchemy.orm import Session
from torch import nn

from lookalike.retrieval.embedding.embedder import Embedder, EmbedderOptions, native_bf16
from lookalike.retrieval.errors import WeightsMismatch
from lookalike.retrieval.models.engines import OpenVinoTrunk
from lookalike.retrieval.models.registry import (
    file_sha256,
    get_backbone,
    resolve_weights,
)
from lookalike.services.catalog import spaces as space_queries
from lookalike.services.catalog.documents import SpaceOptions
from lookalike.services.catalog.models import Space
from lookalike.services.catalog.schemas import SpaceCreate
from lookalike.services.config import Settings
from lookalike.services.errors import CatalogEmpty, SpaceExists, SpaceNotFound
from lookalike.services.spaces.call_size import call_size_file, kept_call_size
from lookalike.services.spaces.engines import default_engine, engine_trunk
from lookalike.services.spaces.model_store import space_head
from lookalike.services.spaces.whitening_store import space_whitening


def default_space_name(settings: Settings) -> str:
    return f"{settings.backbone}-{settings.pooling}"


def ensure_default_space(*, session: Session, settings: Settings) -> Space:
    """The default space, created from settings (backbone, pooling) when the catalog has none.
    Of two first ingests at once (a worker's job and an upload), one creates it and the
    other, refused by the unique name, takes the space the first committed.

    Called first thing in a session: before the engine check (an export and a comparison on
    the bundled photos, seconds) it ends the session's transaction, which on SQLite holds the
    catalog's write lock, so other requests are not refused as "database is locked"."""
    space = space_queries.get_default_space(session=session)
    if space is not None:
        return space
    if session.new or session.dirty or session.deleted:
        raise RuntimeError("ensure_default_space must open its session: it ends the "
                           "session's transaction before the engine check")
    session.rollback()
    data = default_space_definition(settings)
    try:
        return space_queries.create_space(session=session, data=data)
    except SpaceExists:
        space = space_queries.get_default_space(session=session)
        if space is None:
            raise
        return space


def default_space_definition(settings: Settings) -> SpaceCreate:
    """The default space the settings describe, its engine chosen (no catalog access)."""
    spec = get_backbone(settings.backbone)
    weights = resolve_weights(spec, explicit=None, torch_home=settings.torch_home)
    sha256 = file_sha256(weights)
    engine = default_engine(spec=spec, weights=weights, weights_sha256=sha256,
                            settings=settings)
    return SpaceCreate(
        name=default_space_name(settings),
        backbone=spec.name,
        weights_sha256=sha256,
        layer=spec.feature_layer,
        pooling=settings.pooling,
        whitening=None,
        dim=spec.dim,
        options=SpaceOptions(index_factory=settings.index_factory,
                             input_size=spec.weights.input_size, engine=engine,
                             fp32_stem=spec.fp32_stem, int8_fp32_stem=spec.int8_fp32_stem,
                             backend=settings.vector_backend),
    )


def find_space(*, session: Session, name: str | None) -> Space:
    """The space called `name`, or the default one when no name is given."""
    if name is None:
        space = space_queries.get_default_space(session=session)
        if space is None:
            raise CatalogEmpty(
                "the catalog has no embedding space yet; run `lookalike ingest` first")
        return space
    space = space_queries.get_space(session=session, name=name)
    if space is None:
        known = ", ".join(s.name for s in space_queries.list_spaces(session=session)) or "none"
        raise SpaceNotFound(f"unknown space '{name}'; available: {known}")
    return space


def space_weights(space: Space, *, settings: Settings) -> Path:
    """The weight file of a space, checked against the sha256 the space was built with."""
    spec = get_backbone(space.backbone)
    explicit = space.options.weights_file
    path = resolve_weights(spec, explicit=settings.layout.resolve(explicit) if explicit else None,
                           torch_home=settings.torch_home)
    actual = file_sha256(path)
    if space.weights_sha256 and actual != space.weights_sha256:
        raise WeightsMismatch(
            f"space '{space.name}' was built with weights sha256 {space.weights_sha256[:12]}…, "
            f"but {path} has {actual[:12]}…; restore that file or re-index into a new space"
        )
    return path


def build_embedder(space: Space, *, settings: Settings) -> Embedder:
    """The model of a space, loaded from its verified weights (and head, if trained), run by
    the space's engine in model calls of `forward_batch` images (unset: the size measured
    fastest for it on this CPU, services/spaces/call_size.py)."""
    spec = get_backbone(space.backbone)
    weights = space_weights(space, settings=settings)
    weights_sha256 = space.weights_sha256 or file_sha256(weights)

    def trunk() -> nn.Module | OpenVinoTrunk:
        return engine_trunk(space.options.engine, spec=spec, weights=weights,
                            weights_sha256=weights_sha256, settings=settings,
                            fp32_stem=space.options.fp32_stem,
                            int8_fp32_stem=space.options.int8_fp32_stem)
    options = EmbedderOptions(
        batch_size=settings.batch_size,
        num_workers=settings.decode_workers or 0,
        embed_in_workers=bool(settings.embed_in_workers),
        channels_last=settings.channels_last,
        bf16=native_bf16() if settings.bf16 is None else settings.bf16,
        pooling=space.pooling,
        gem_p=space.options.gem_p,
        scales=tuple(space.options.scales),
        frozen_graph=settings.frozen_graph,
        input_size=space.options.input_size,
    )
    whitening, head = space_whitening(space, settings=settings), space_head(space,
                                                                            settings=settings)

    def embedder_of(forward_batch: int, model: nn.Module | OpenVinoTrunk) -> Embedder:
        return Embedder(model, spec=spec, whitening=whitening, head=head,
                        options=replace(options, forward_batch=forward_batch))
    forward_batch = settings.forward_batch
    if forward_batch is None:
        # Measured on a trunk of its own: an OpenVINO trunk keeps the first shapes it runs
        # compiled, and those should be the served calls', not the measurement's.
        path = call_size_file(settings, backbone=spec.name, weights_sha256=weights_sha256,
                              engine=space.options.engine, options=options,
                              fp32_stem=space.options.fp32_stem,
                              int8_fp32_stem=space.options.int8_fp32_stem)
        forward_batch = kept_call_size(path, embedder_of=lambda size: embedder_of(size, trunk()))
    return embedder_of(forward_batch, trunk())
