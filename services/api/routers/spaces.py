"""/v1/spaces: every embedding space with its size and last evaluation; its backbone's
filters and an upload's saliency; switch the default; delete a space."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Query, Response, UploadFile
from fastapi.concurrency import run_in_threadpool

from lookalike.services.api.auth import NEEDS_ADMIN, NEEDS_SEARCH
from lookalike.services.api.deps import MAX_ID, RuntimeDep, read_limited
from lookalike.services.api.ratelimit import ADMIN_RATE, SEARCH_GUARD
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


@router.post("/{name}/visualize/saliency", response_class=Response,
             responses={status: {"model": ErrorResponse} for status in (404, 413, 415, 422)},
             dependencies=[SEARCH_GUARD])
async def space_saliency(name: str, runtime: RuntimeDep, file: Annotated[UploadFile, File()],
                         match: Annotated[int | None, Query(ge=1, le=MAX_ID, description=(
                             "catalog image id the similarity is taken against (default: "
                             "the upload itself)"))] = None) -> Response:
    """Where an uploaded image's similarity (to itself, or to catalog image `match`) comes
    from: the gradient of the cosine on its pixels, over the image (PNG). Not stored."""
    data = await read_limited(file, runtime.settings.max_upload_bytes)
    png = await run_in_threadpool(visualize.saliency_png, runtime, space_name=name, data=data,
                                  match_id=match)
    return Response(png, media_type="image/png")


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
