"""API keys: created with a random secret shown once, kept as its sha256, revoked by name;
and the identity a request's secret proves."""

from __future__ import annotations

import hashlib
import logging
import secrets
from dataclasses import dataclass

from lookalike.services.auth.scopes import SCOPES, parse_scopes
from lookalike.services.catalog import keys as key_queries
from lookalike.services.catalog.models import ApiKey
from lookalike.services.errors import InvalidRequest
from lookalike.services.runtime import Runtime

log = logging.getLogger(__name__)

PREFIX = "lk_"


@dataclass(frozen=True)
class Identity:
    """Who is asking: a key's name and scopes, or `anonymous` with every scope when the
    server does not require keys."""

    name: str
    scopes: frozenset[str]
    authenticated: bool


ANONYMOUS = Identity("anonymous", frozenset(SCOPES), authenticated=False)


def secret_sha256(secret: str) -> str:
    """The stored form of a secret. The secrets are 256 random bits, so a plain hash cannot
    be reversed by guessing: no slow password hash is needed."""
    return hashlib.sha256(secret.encode()).hexdigest()


def create_api_key(runtime: Runtime, *, name: str, scopes: str) -> tuple[ApiKey, str]:
    """A new key and its secret; the secret is not kept and cannot be shown again."""
    granted = parse_scopes(scopes)
    secret = PREFIX + secrets.token_urlsafe(32)
    with runtime.session() as session:
        key = key_queries.create_key(session=session, name=name,
                                     secret_sha256=secret_sha256(secret),
                                     scopes=",".join(s for s in SCOPES if s in granted))
        session.commit()
    log.info("API key %r created with scopes %s", name, key.scopes)
    return key, secret


def register_bootstrap_key(runtime: Runtime, secret: str) -> ApiKey | None:
    """Register a deployment's first admin key from its secret (LOOKALIKE_BOOTSTRAP_KEY),
    named after its hash so a rotated secret becomes a new key; None when already there."""
    if not secret.startswith(PREFIX) or len(secret) < 32:
        raise InvalidRequest(f"LOOKALIKE_BOOTSTRAP_KEY must start with {PREFIX!r} and hold at "
                             "least 32 characters; generate one with secrets.token_urlsafe(32)")
    digest = secret_sha256(secret)
    with runtime.session() as session:
        if key_queries.find_live_key(session=session, secret_sha256=digest) is not None:
            return None
        key = key_queries.create_key(session=session, name=f"bootstrap-{digest[:8]}",
                                     secret_sha256=digest, scopes="admin")
        session.commit()
    log.info("bootstrap API key %r registered", key.name)
    return key


def list_api_keys(runtime: Runtime) -> list[ApiKey]:
    with runtime.read_session() as session:
        return key_queries.list_keys(session=session)


def revoke_api_key(runtime: Runtime, *, name: str) -> ApiKey:
    with runtime.session() as session:
        key = key_queries.revoke_key(session=session, name=name)
        session.commit()
    log.info("API key %r revoked", name)
    return key


def identify(runtime: Runtime, secret: str) -> Identity | None:
    """The live key this secret belongs to, or None (unknown, revoked or malformed)."""
    if not secret.startswith(PREFIX):
        return None
    digest = secret_sha256(secret)
    return runtime.fresh(("key", digest), lambda: _live_identity(runtime, digest))


def kept_identity(runtime: Runtime, secret: str) -> tuple[bool, Identity | None]:
    """(True, `identify`'s answer) when it needs no catalog read, else (False, None)."""
    if not secret.startswith(PREFIX):
        return True, None
    found, who = runtime.kept(("key", secret_sha256(secret)))
    return found, who if isinstance(who, Identity) else None


def _live_identity(runtime: Runtime, digest: str) -> Identity | None:
    with runtime.read_session() as session:
        key = key_queries.find_live_key(session=session, secret_sha256=digest)
        if key is None:
            return None
        return Identity(key.name, frozenset(key.scopes.split(",")), authenticated=True)


def keys_required(runtime: Runtime) -> bool:
    """Whether requests need a key: LOOKALIKE_AUTH=on, or (auto) as soon as one key exists;
    LOOKALIKE_AUTH=off never (the explicit opt-out, logged at start-up)."""
    mode = runtime.settings.auth
    if mode != "auto":
        return mode == "on"
    return runtime.fresh("keys_required", lambda: _any_live_key(runtime))


def kept_keys_required(runtime: Runtime) -> bool | None:
    """`keys_required` when it needs no catalog read (a fixed mode, or the answer kept
    since the last commit), else None."""
    mode = runtime.settings.auth
    if mode != "auto":
        return mode == "on"
    found, required = runtime.kept("keys_required")
    return bool(required) if found else None


def _any_live_key(runtime: Runtime) -> bool:
    with runtime.read_session() as session:
        return key_queries.any_live_key(session=session)
