"""GET /v1/spaces: every embedding space, its definition and size."""

from __future__ import annotations

from fastapi import APIRouter

from lookalike.services.api.deps import RuntimeDep
from lookalike.services.api.schemas import SpacePublic
from lookalike.services.catalog import spaces as space_queries

router = APIRouter(prefix="/v1/spaces", tags=["spaces"])


@router.get("", response_model=list[SpacePublic])
def list_spaces(runtime: RuntimeDep) -> list[SpacePublic]:
    with runtime.session() as session:
        return [
            SpacePublic(name=s.name, backbone=s.backbone, weights_sha256=s.weights_sha256,
                        layer=s.layer, pooling=s.pooling, whitening=s.whitening, dim=s.dim,
                        is_default=s.is_default, options=s.options,
                        vector_count=space_queries.vector_count(session=session, space_id=s.id))
            for s in space_queries.list_spaces(session=session)
        ]
