"""GET /v1/auth/me: who the sent key is and what it may do, so the page can ask for a key
and show only what its scopes allow."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel

from lookalike.services.api.auth import IdentityDep
from lookalike.services.api.deps import RuntimeDep
from lookalike.services.api.schemas import ErrorResponse
from lookalike.services.auth.keys import keys_required
from lookalike.services.auth.scopes import SCOPES, grants

router = APIRouter(prefix="/v1/auth", tags=["auth"])


class IdentityPublic(BaseModel):
    name: str
    scopes: list[str]
    authenticated: bool
    keys_required: bool


@router.get("/me", response_model=IdentityPublic, responses={401: {"model": ErrorResponse}})
async def me(who: IdentityDep, runtime: RuntimeDep) -> IdentityPublic:
    """The key's name and the scopes it grants (admin grants all); without a key on an open
    server, `anonymous` with every scope."""
    required = await run_in_threadpool(keys_required, runtime)
    return IdentityPublic(name=who.name, scopes=[s for s in SCOPES if grants(who.scopes, s)],
                          authenticated=who.authenticated, keys_required=required)
