"""/v1/spaces: every embedding space with its size and last evaluation; switch the default;
delete a space."""

from __future__ import annotations

from fastapi import APIRouter, Response

from lookalike.services.api.auth import NEEDS_ADMIN, NEEDS_SEARCH
from lookalike.services.api.deps import RuntimeDep
from lookalike.services.api.ratelimit import ADMIN_RATE
from lookalike.services.api.schemas import ErrorResponse, SpaceDeleted, SpacePublic
from lookalike.services.spaces import lifecycle as space_lifecycle
from lookalike.services.spaces import visualize

router = APIRouter(prefix="/v1/spaces", tags=["spaces"])
ERRORS = {status: {"model": ErrorResponse} for status in (404, 409)}


@router.get("", response_model=list[SpacePublic], dependencies=[NEEDS_SEARCH])
def list_spaces(runtime: RuntimeDep) -> list[SpacePublic]:
    return [SpacePublic.model_validate(summary.to_public())
            for summary in space_lifecycle.list_spaces(runtime)]


@router.get("/{name}/visualize/filters.png", response_class=Response, responses=ERRORS,
            dependencies=[NEEDS_SEARCH])
def space_filters(name: str, runtime: RuntimeDep) -> Response:
    """The first-layer filters of the space's backbone as a grid (PNG)."""
    return Response(visualize.filters_png(runtime, space_name=name), media_type="image/png")


@router.post("/{name}/default", response_model=SpacePublic, responses=ERRORS,
             dependencies=[NEEDS_ADMIN, ADMIN_RATE])
def set_default(name: str, runtime: RuntimeDep, force: bool = False) -> SpacePublic:
    """Make this space the default of every API process; 409 when it holds fewer vectors
    than the current default, unless `force=true`."""
    summary = space_lifecycle.set_default(runtime, name=name, force=force)
    return SpacePublic.model_validate(summary.to_public())


@router.delete("/{name}", response_model=SpaceDeleted, responses=ERRORS,
               dependencies=[NEEDS_ADMIN, ADMIN_RATE])
def delete_space(name: str, runtime: RuntimeDep) -> SpaceDeleted:
    """Delete a space that is not the default, with its vectors and index files."""
    return SpaceDeleted.model_validate(space_lifecycle.delete_space(runtime, name=name)
                                       .to_public())
