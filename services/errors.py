"""The service layer's one error hierarchy, catalog queries included; the API maps each kind
to one HTTP status in one place (services/api/errors.py), the CLI prints its message."""

from __future__ import annotations

from lookalike.retrieval.errors import LookalikeError


class NotFound(LookalikeError):
    """Something the caller named does not exist in the catalog."""


class SpaceNotFound(NotFound):
    """An embedding space name or id that is not in the catalog."""


class ImageNotFound(NotFound):
    """An image id that is not in the catalog (or was deleted)."""


class VideoNotFound(NotFound):
    """A video id that is not in the catalog, or whose stored file is gone."""


class JobNotFound(NotFound):
    """A job id that is not in the catalog."""


class KeyNotFound(NotFound):
    """An API key name that is not in the catalog."""


class NotAuthenticated(LookalikeError):
    """A request without a valid API key where the server requires one (401)."""


class NotAllowed(LookalikeError):
    """A request whose key lacks the scope the route needs, or a path outside the roots (403)."""

    def __init__(self, message: str, *, scope: str | None = None) -> None:
        super().__init__(message)
        self.scope = scope


class Busy(LookalikeError):
    """Every slot for this kind of work is taken; retry shortly (503)."""


class RateLimited(LookalikeError):
    """Too many requests for this key or address in the current window (429)."""

    def __init__(self, message: str, *, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class CatalogEmpty(LookalikeError):
    """A search before any space exists: there is nothing to search yet."""


class CatalogNotReady(LookalikeError):
    """The catalog is missing or at an older schema than this code needs."""


class MigrationsNotFound(LookalikeError):
    """The installed package holds no Alembic environment: the migrations cannot be run."""


class InvalidRequest(LookalikeError):
    """A request parameter outside what is allowed (the message says what is)."""


class InvalidStatus(InvalidRequest):
    """An image status outside the allowed set."""


class VectorSizeMismatch(LookalikeError):
    """A vector whose byte length is not the space's dimension times four (float32)."""


class FetchFailed(LookalikeError):
    """A URL that could not be downloaded (network error, HTTP error status)."""


class FetchRefused(FetchFailed):
    """A URL the fetch rules do not allow (scheme, port, an address that is not public):
    refused before any connection to it."""


class SpaceConflict(LookalikeError):
    """A space action its state refuses: deleting the default, defaulting a half-filled one."""


class SpaceExists(SpaceConflict):
    """A space name that is already taken."""


class JobStateConflict(LookalikeError):
    """A job action (cancel, retry) that its current state does not allow."""


class BenchFailed(LookalikeError):
    """A benchmark's helper process (an API server, a worker) failed or never got ready."""


class BackupError(LookalikeError):
    """A backup that cannot be written, or a restore refused before it writes anything: a
    missing or damaged file in the backup, or a home that is not empty."""


class TextModelNotFound(NotFound):
    """A text model name that is not in the catalog, or no default text model yet."""


class TextTooLong(InvalidRequest):
    """A text larger than LOOKALIKE_MAX_TEXT_BYTES (413)."""


class NotCalibrated(LookalikeError):
    """A copy question to a space without fitted copy thresholds."""


class DetectorNotFound(NotFound):
    """A detector name with no trained file under LOOKALIKE_HOME/detectors."""


class CallSizeUnreadable(LookalikeError):
    """A kept model call size (services/spaces/call_size.py) that is not a whole number."""
