"""Typed errors raised by catalog queries; the service edge translates them once."""

from __future__ import annotations

from lookalike.retrieval.errors import LookalikeError


class CatalogError(LookalikeError):
    """Base of every error the catalog raises on purpose."""


class UnknownSpace(CatalogError):
    """A space name or id that is not in the catalog."""


class SpaceExists(CatalogError):
    """A space name that is already taken."""


class UnknownImage(CatalogError):
    """An image id that is not in the catalog."""


class InvalidStatus(CatalogError):
    """An image status outside the allowed set."""


class VectorSizeMismatch(CatalogError):
    """A vector whose byte length is not the space's dimension times four (float32)."""


class MigrationsNotFound(CatalogError):
    """No alembic.ini above the installed package: the migrations cannot be located."""


class UnknownJob(CatalogError):
    """A job id that is not in the catalog."""


class JobStateConflict(CatalogError):
    """A job action (cancel, retry) that its current state does not allow."""
