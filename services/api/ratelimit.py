"""Rate limits per key (or per client address without one), shared by every API process
through Redis when a broker is configured, in memory otherwise; and a bound on uploads being
decoded at once, so a flood queues briefly and then gets 503 instead of exhausting memory."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from limits import RateLimitItem, parse
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter
from redis.exceptions import RedisError

from lookalike.services.api.auth import IdentityDep, check_scope, current_identity
from lookalike.services.api.ratestore import TrimmedMemoryStorage
from lookalike.services.auth.keys import Identity
from lookalike.services.auth.scopes import INGEST, SEARCH
from lookalike.services.config import Settings
from lookalike.services.errors import Busy, RateLimited

UPLOAD_WAIT_S = 10.0
log = logging.getLogger(__name__)


@dataclass
class Budgets:
    """The limiter, each route group's budget, and the upload slots of this process."""

    limiter: MovingWindowRateLimiter
    items: dict[str, RateLimitItem]
    namespace: str
    uploads: asyncio.Semaphore

    @classmethod
    def from_settings(cls, settings: Settings) -> Budgets:
        storage = (storage_from_string(settings.broker_url) if settings.broker_url
                   else TrimmedMemoryStorage())
        items = {"search": parse(settings.rate_search),
                 "search-upload": parse(settings.rate_search_upload),
                 "ingest": parse(settings.rate_ingest),
                 "admin": parse(settings.rate_admin)}
        return cls(MovingWindowRateLimiter(storage), items, settings.rate_namespace,
                   asyncio.Semaphore(settings.max_concurrent_uploads))

    def take(self, bucket: str, caller: str) -> None:
        """Count one request of `caller` against `bucket`; RateLimited when it is spent.
        While the shared counter store (Redis) is unreachable the request is let through and
        a warning logged: searches keep working through a broker outage, unmetered."""
        item = self.items[bucket]
        try:
            allowed = self.limiter.hit(item, self.namespace, bucket, caller)
        except RedisError as exc:
            log.warning("rate limits not enforced: their store is unreachable (%s)", exc)
            return
        if allowed:
            return
        reset = self.limiter.get_window_stats(item, self.namespace, bucket, caller).reset_time
        wait = max(1, math.ceil(reset - time.time()))
        raise RateLimited(f"too many {bucket} requests ({item}); retry in {wait} s",
                          retry_after_s=wait)


def _caller(request: Request, who_name: str, authenticated: bool) -> str:
    if authenticated:
        return f"key:{who_name}"
    return f"addr:{request.client.host if request.client else 'unknown'}"


def charge_upload(request: Request, who: Identity) -> None:
    """Charge a search by URL to the upload budget too: it downloads and decodes an image."""
    budgets: Budgets = request.app.state.budgets
    budgets.take("search-upload", _caller(request, who.name, who.authenticated))


def charge(request: Request, who: Identity, bucket: str) -> None:
    """Charge one request to `bucket` (search by upload is its own, dearer bucket: a multipart
    search is charged there instead of to `search`)."""
    budgets: Budgets = request.app.state.budgets
    multipart = request.headers.get("content-type", "").startswith("multipart/")
    name = "search-upload" if bucket == "search" and multipart else bucket
    budgets.take(name, _caller(request, who.name, who.authenticated))


def limited(bucket: str) -> object:
    """A dependency charging one request to `bucket` (see `charge`)."""

    async def charged(request: Request, who: IdentityDep) -> None:
        charge(request, who, bucket)

    return Depends(charged)


@asynccontextmanager
async def held_upload_slot(request: Request) -> AsyncIterator[None]:
    """Hold one of this process's upload slots meanwhile (503 after UPLOAD_WAIT_S)."""
    slots: asyncio.Semaphore = request.app.state.budgets.uploads
    if slots.locked():  # wait_for makes a task: only a wait needs one
        try:
            await asyncio.wait_for(slots.acquire(), timeout=UPLOAD_WAIT_S)
        except TimeoutError as exc:
            raise Busy("too many uploads are being processed; retry in a few seconds") from exc
    else:
        await slots.acquire()
    try:
        yield
    finally:
        slots.release()


async def upload_slot(request: Request) -> AsyncIterator[None]:
    """Hold one of this process's upload slots while an upload is read and decoded."""
    async with held_upload_slot(request):
        yield


def guarded(scope: str, bucket: str, *, upload: bool) -> Any:
    """The whole guard of a route as ONE dependency giving the identity: the key (401) and
    `scope` (403), one request charged to `bucket` (429), and, for a route that always takes
    an upload, an upload slot held until the answer is sent (503): what NEEDS_*, *_RATE and
    UPLOAD_SLOT do, in that order. FastAPI resolves each dependency with per-request
    introspection, and a yielding one with an exit stack, so a route that only sometimes
    reads an image (search: by id or by upload) takes the plain guard and holds
    `held_upload_slot` itself around the upload: a search by id then neither waits for
    an upload slot nor pays for one."""

    async def checked(request: Request) -> Identity:
        who = await current_identity(request, request.app.state.runtime)
        check_scope(request, who, scope)
        charge(request, who, bucket)
        return who

    async def guard(request: Request) -> AsyncIterator[Identity]:
        who = await checked(request)
        async with held_upload_slot(request):
            yield who

    return Depends(guard if upload else checked)


SEARCH_RATE = limited("search")
INGEST_RATE = limited("ingest")
ADMIN_RATE = limited("admin")
UPLOAD_SLOT = Depends(upload_slot)
SEARCH_GUARD = guarded(SEARCH, "search", upload=False)
SearchAccess = Annotated[Identity, SEARCH_GUARD]
IngestAccess = Annotated[Identity, guarded(INGEST, "ingest", upload=True)]
