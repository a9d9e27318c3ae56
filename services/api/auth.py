"""Route guards: the identity a request's bearer key proves, and the scope each route needs.
The secret is read from the Authorization header only, and never logged."""

from __future__ import annotations

import json
import logging
from typing import Annotated

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool

from lookalike.services.api.deps import RuntimeDep
from lookalike.services.auth.keys import (
    ANONYMOUS,
    Identity,
    identify,
    kept_identity,
    kept_keys_required,
    keys_required,
)
from lookalike.services.auth.scopes import ADMIN, INGEST, SEARCH, grants
from lookalike.services.errors import NotAllowed, NotAuthenticated

audit_log = logging.getLogger("lookalike.audit")


def _bearer(request: Request) -> str | None:
    """The bearer secret; a request with several Authorization headers is refused, since
    which one counts would depend on who reads it (a proxy may check one, this the other)."""
    headers = request.headers.getlist("authorization")
    if len(headers) > 1:
        raise NotAuthenticated(f"send one Authorization header; this request has "
                               f"{len(headers)}")
    scheme, _, secret = (headers[0] if headers else "").partition(" ")
    return secret.strip() if scheme.lower() == "bearer" and secret.strip() else None


async def current_identity(request: Request, runtime: RuntimeDep) -> Identity:
    """The key's identity; ANONYMOUS when keys are not required and none is sent. A key that
    is sent is always checked, so a wrong one is refused even on an open server. Answers kept
    since the catalog's last commit are read on the event loop; the rest in a thread."""
    cached = getattr(request.state, "identity", None)
    if isinstance(cached, Identity):
        return cached
    secret = _bearer(request)
    if secret is None:
        required = kept_keys_required(runtime)
        if required is None:
            required = await run_in_threadpool(keys_required, runtime)
        if required:
            raise NotAuthenticated("this server requires an API key: send "
                                   "'Authorization: Bearer <key>' (`lookalike keys create`)")
        who = ANONYMOUS
    else:
        known, found = kept_identity(runtime, secret)
        if not known:
            found = await run_in_threadpool(identify, runtime, secret)
        if found is None:
            raise NotAuthenticated("the API key is unknown or revoked")
        who = found
    request.state.identity = who
    return who


IdentityDep = Annotated[Identity, Depends(current_identity)]


def audit(request: Request, who: Identity) -> None:
    """One JSON line on the `lookalike.audit` logger for an admin action: who, what, on what."""
    audit_log.info(json.dumps({
        "event": "admin_action", "key": who.name, "authenticated": who.authenticated,
        "method": request.method, "route": request.url.path,
        "targets": dict(request.path_params), "query": dict(request.query_params)}))


def check_scope(request: Request, who: Identity, scope: str) -> None:
    """Refuse (403) an identity without `scope` (admin holds every scope); audit admin acts."""
    if not grants(who.scopes, scope):
        raise NotAllowed(f"the key {who.name!r} lacks the {scope!r} scope this needs",
                         scope=scope)
    if scope == ADMIN:
        audit(request, who)


def require(scope: str) -> object:
    """A dependency refusing (403) identities without `scope` (admin holds every scope)."""

    async def check(request: Request, who: IdentityDep) -> Identity:
        check_scope(request, who, scope)
        return who

    return Depends(check)


NEEDS_SEARCH = require(SEARCH)
NEEDS_INGEST = require(INGEST)
NEEDS_ADMIN = require(ADMIN)
