"""/v1/images: upload, look up, fetch the file or thumbnail, delete."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Query, Response, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse

from lookalike.retrieval.images import FORMATS
from lookalike.services.api.auth import NEEDS_ADMIN, NEEDS_INGEST, NEEDS_SEARCH, IdentityDep
from lookalike.services.api.deps import MAX_ID, ImageId, RuntimeDep, read_limited, upload_source
from lookalike.services.api.ratelimit import ADMIN_RATE, INGEST_RATE, IngestAccess
from lookalike.services.api.schemas import (
    ErrorResponse,
    ImageListed,
    ImagePage,
    ImagePublic,
    ImageUploadResponse,
    ImageWordsUpdate,
    UploadRegion,
)
from lookalike.services.auth.keys import Identity
from lookalike.services.auth.redact import shown_source
from lookalike.services.auth.scopes import ADMIN, grants
from lookalike.services.catalog import images as image_queries
from lookalike.services.catalog.models import Image
from lookalike.services.detection.regions import add_user_box, check_user_box
from lookalike.services.detection.running import detect_images, ingest_detector
from lookalike.services.errors import InvalidRequest
from lookalike.services.ingest.captions import CAPTION_MAX, TITLE_MAX, Words
from lookalike.services.ingest.images import (
    delete_image,
    get_live_image,
    original_file,
    thumbnail_file,
)
from lookalike.services.ingest.metadata import COLLECTION_MAX, LABEL_MAX
from lookalike.services.ingest.pipeline import ingest_bytes
from lookalike.services.text.topics import edit_words

router = APIRouter(prefix="/v1/images", tags=["images"])

ERRORS = {status: {"model": ErrorResponse} for status in (404, 413, 415, 422)}


def _public(image: Image, who: Identity) -> ImagePublic:
    """The image's metadata, its source shown in full only to an admin."""
    public = ImagePublic.model_validate(image)
    return public.model_copy(update={
        "source_uri": shown_source(public.source_uri, full=grants(who.scopes, ADMIN))})


def _upload_response(image: Image, who: Identity, *, duplicate: bool) -> ImageUploadResponse:
    return ImageUploadResponse(**_public(image, who).model_dump(), duplicate=duplicate,
                               thumbnail_url=f"/v1/images/{image.id}/thumbnail",
                               file_url=f"/v1/images/{image.id}/file")


@router.post("", status_code=201, response_model=ImageUploadResponse, responses=ERRORS)
async def upload_image(response: Response, runtime: RuntimeDep, who: IngestAccess,
                       file: Annotated[UploadFile, File()],
                       collection: Annotated[str | None,
                                             Form(max_length=COLLECTION_MAX)] = None,
                       label: Annotated[str | None, Form(max_length=LABEL_MAX)] = None,
                       title: Annotated[str | None, Form(max_length=TITLE_MAX)] = None,
                       caption: Annotated[str | None, Form(max_length=CAPTION_MAX)] = None,
                       box: Annotated[str | None, Form(
                           max_length=200, description="x0,y0,x1,y1 in the image's pixels: "
                           "stored as a 'user' region and indexed for scope=regions")] = None,
                       box_label: Annotated[str | None, Form(max_length=200)] = None,
                       detect: Annotated[str | None, Form(
                           max_length=100, description="run this detector (a trained one, "
                           "or 'faces') on the image and store and index its boxes as "
                           "regions; default: the collection's (LOOKALIKE_DETECT_DEFAULTS)")
                           ] = None,
                       ) -> ImageUploadResponse:
    """Add an image; 201 when new, 200 with duplicate=true when the same bytes exist.
    The image is searchable when this returns. A collection, label, title or caption
    longer than the catalog holds is a 422, answered before anything is stored. Without a
    caption, the image's EXIF ImageDescription becomes its caption. A `box` (checked before
    anything is stored: 422 when it is not inside the image) becomes a `user` region;
    `detect` (else the collection's default detector) runs a detector on the image and
    stores its boxes as regions (`detected`: how many), searchable with scope=regions when
    this returns."""
    data = await read_limited(file, runtime.settings.max_upload_bytes)
    checked = (await run_in_threadpool(check_user_box, runtime, data, box)
               if box is not None else None)
    detect = await run_in_threadpool(ingest_detector, runtime, collection=collection,
                                     asked=detect)  # refused before anything is stored
    result = await run_in_threadpool(ingest_bytes, runtime, data,
                                     source=upload_source(file.filename),
                                     collection=collection, label=label,
                                     words=Words(title=title or None, caption=caption or None))
    if not result.created:
        response.status_code = 200
    answer = _upload_response(result.image, who, duplicate=not result.created)
    if checked is not None:
        region = await run_in_threadpool(add_user_box, runtime, result.image.id, checked,
                                         label=box_label or None)
        answer = answer.model_copy(update={"region": UploadRegion.model_validate(region)})
    if detect is not None:
        found, _, errors = await run_in_threadpool(detect_images, runtime, [result.image.id],
                                                   name=detect)
        answer = answer.model_copy(update={"detected": found})
        if errors:
            raise InvalidRequest(f"the image was stored, but detection failed: {errors[0]}")
    return answer


@router.get("", response_model=ImagePage, responses=ERRORS, dependencies=[NEEDS_SEARCH])
def list_images(runtime: RuntimeDep, who: IdentityDep, collection: str | None = None,
                label: str | None = None,
                status: str = "embedded", offset: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
                limit: Annotated[int, Query(ge=1, le=200)] = 50) -> ImagePage:
    """A page of the catalog in id order, filtered by collection, label and status."""
    with runtime.session() as session:
        rows = image_queries.list_images(session=session, collection=collection, label=label,
                                         status=status, offset=offset, limit=limit + 1)
    items = [ImageListed(**_public(row, who).model_dump(),
                         thumbnail_url=f"/v1/images/{row.id}/thumbnail") for row in rows[:limit]]
    return ImagePage(items=items, offset=offset, limit=limit,
                     next_offset=offset + limit if len(rows) > limit else None)


@router.get("/{image_id}", response_model=ImagePublic, responses=ERRORS,
            dependencies=[NEEDS_SEARCH])
def get_image(image_id: ImageId, runtime: RuntimeDep, who: IdentityDep) -> ImagePublic:
    return _public(get_live_image(runtime, image_id), who)


@router.patch("/{image_id}", response_model=ImagePublic, responses=ERRORS,
              dependencies=[NEEDS_INGEST, INGEST_RATE])
def patch_image(image_id: ImageId, body: ImageWordsUpdate, runtime: RuntimeDep,
                who: IdentityDep) -> ImagePublic:
    """Edit an image's title and caption; fields left out are kept, null clears one. Its
    topic is given again by the default text model, when there is one."""
    values = body.model_dump(include=body.model_fields_set)
    return _public(edit_words(runtime, image_id, values), who)


@router.get("/{image_id}/thumbnail", response_class=FileResponse, responses=ERRORS,
            dependencies=[NEEDS_SEARCH])
def get_thumbnail(image_id: ImageId, runtime: RuntimeDep) -> FileResponse:
    return FileResponse(thumbnail_file(runtime, image_id), media_type="image/jpeg")


@router.get("/{image_id}/file", response_class=FileResponse, responses=ERRORS,
            dependencies=[NEEDS_SEARCH])
def get_file(image_id: ImageId, runtime: RuntimeDep) -> FileResponse:
    path, image_format = original_file(runtime, image_id)
    kind = FORMATS.get(image_format)
    return FileResponse(path, media_type=kind.media_type if kind else "application/octet-stream")


@router.delete("/{image_id}", status_code=204, responses=ERRORS,
               dependencies=[NEEDS_ADMIN, ADMIN_RATE])
def remove_image(image_id: ImageId, runtime: RuntimeDep) -> Response:
    """Delete an image; it is gone from search results when this returns."""
    delete_image(runtime, image_id)
    return Response(status_code=204)
