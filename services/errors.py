"""Errors of the service layer; the API maps each to one HTTP status in one place."""

from __future__ import annotations

from lookalike.retrieval.errors import LookalikeError


class NotFound(LookalikeError):
    """Something the caller named does not exist in the catalog."""


class SpaceNotFound(NotFound):
    """An embedding space name that is not in the catalog."""


class ImageNotFound(NotFound):
    """An image id that is not in the catalog (or was deleted)."""


class CatalogEmpty(LookalikeError):
    """A search before any space exists: there is nothing to search yet."""


class InvalidRequest(LookalikeError):
    """A request parameter outside what is allowed (the message says what is)."""


class JobNotFound(NotFound):
    """A job id that is not in the catalog."""


class FetchFailed(LookalikeError):
    """A URL that could not be downloaded (network error, HTTP error status)."""


class SpaceConflict(LookalikeError):
    """A space action its state refuses: deleting the default, defaulting a half-filled one."""


class BenchFailed(LookalikeError):
    """A benchmark's helper process (an API server, a worker) failed or never got ready."""
