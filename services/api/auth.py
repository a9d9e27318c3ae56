"""Route guards: the identity a request's bearer key proves, and the scope each route needs.
The secret is read from the Authorization header only, and never logged."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool

from lookalike.services.api.deps import RuntimeDep
from lookalike.services.auth.keys import ANONYMOUS, Identity, identify, keys_required
from lookalike.services.auth.scopes import ADMIN, INGEST, SEARCH, grants
from lookalike.services.errors import NotAllowed, NotAuthenticated


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, secret = header.partition(" ")
    return secret.strip() if scheme.lower() == "bearer" and secret.strip() else None


async def current_identity(request: Request, runtime: RuntimeDep) -> Identity:
    """The key's identity; ANONYMOUS when keys are not required and none is sent. A key that
    is sent is always checked, so a wrong one is refused even on an open server."""
    cached = getattr(request.state, "identity", None)
    if isinstance(cached, Identity):
        return cached
    secret = _bearer(request)
    if secret is None:
        if await run_in_threadpool(keys_required, runtime):
            raise NotAuthenticated("this server requires an API key: send "
                                   "'Authorization: Bearer <key>' (`lookalike keys create`)")
        who = ANONYMOUS
    else:
        found = await run_in_threadpool(identify, runtime, secret)
        if found is None:
            raise NotAuthenticated("the API key is unknown or revoked")
        who = found
    request.state.identity = who
    return who


IdentityDep = Annotated[Identity, Depends(current_identity)]


def require(scope: str) -> object:
    """A dependency refusing (403) identities without `scope` (admin holds every scope)."""

    async def check(who: IdentityDep) -> Identity:
        if not grants(who.scopes, scope):
            raise NotAllowed(f"the key {who.name!r} lacks the {scope!r} scope this needs",
                             scope=scope)
        return who

    return Depends(check)


NEEDS_SEARCH = require(SEARCH)
NEEDS_INGEST = require(INGEST)
NEEDS_ADMIN = require(ADMIN)
