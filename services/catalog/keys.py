"""API key rows: create, find by the hash of a secret, list, revoke."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from lookalike.services.catalog.models import ApiKey, utcnow
from lookalike.services.errors import InvalidRequest, KeyNotFound


def create_key(*, session: Session, name: str, secret_sha256: str, scopes: str) -> ApiKey:
    """A new key; InvalidRequest when the name is taken."""
    key = ApiKey(name=name, secret_sha256=secret_sha256, scopes=scopes)
    session.add(key)
    try:
        session.flush()
    except IntegrityError as error:
        session.rollback()
        raise InvalidRequest(f"a key named {name!r} already exists; pick another name or "
                             f"revoke it first (`lookalike keys revoke {name}`)") from error
    return key


def find_live_key(*, session: Session, secret_sha256: str) -> ApiKey | None:
    """The unrevoked key whose secret hashes to `secret_sha256`, or None."""
    query = select(ApiKey).where(ApiKey.secret_sha256 == secret_sha256,
                                 ApiKey.revoked_at.is_(None))
    return session.scalars(query).first()


def any_live_key(*, session: Session) -> bool:
    """Whether at least one key can authenticate (then the API requires one)."""
    return session.scalar(select(ApiKey.id).where(ApiKey.revoked_at.is_(None)).limit(1)) is not None


def list_keys(*, session: Session) -> list[ApiKey]:
    return list(session.scalars(select(ApiKey).order_by(ApiKey.id)))


def revoke_key(*, session: Session, name: str) -> ApiKey:
    """Revoke the key `name` (kept listed); KeyNotFound when there is none."""
    key = session.scalars(select(ApiKey).where(ApiKey.name == name)).first()
    if key is None:
        raise KeyNotFound(f"no key named {name!r}; `lookalike keys list` shows the keys")
    if key.revoked_at is None:
        key.revoked_at = utcnow()
    return key
