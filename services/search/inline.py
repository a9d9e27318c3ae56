"""Which searches are light enough to answer on the server's event loop.

Handing a search to a worker thread and back costs two thread wake-ups, a sizeable share
of a search by id on a local catalog. Such a search holds Python's lock for most of its
time anyway, so running it on the loop loses no parallelism; a search that could wait on a
network (PostgreSQL, a URL), decode images (verification, a video moment, a box, the region
re-ranking of scope=regions) or scan the catalog (filters) still goes to a thread, and so
does any search whose space or video answer is not already kept.
"""

from __future__ import annotations

from lookalike.services.catalog.models import Space
from lookalike.services.runtime import Runtime
from lookalike.services.search.filters import Filters
from lookalike.services.search.verify import verify_enabled


def answers_inline(runtime: Runtime, *, space_name: str | None, image_id: int | None,
                   url: str | None, box: str | None, filters: Filters,
                   verify: bool | None, scope: str = "images") -> bool:
    """Whether this search by catalogued id needs neither a network, a decode nor a scan,
    judged from answers kept since the catalog's last commit (no catalog read here)."""
    if (image_id is None or url is not None or box is not None or filters.restricts
            or scope != "images"):
        return False
    found, space = runtime.kept(("space", space_name))
    if not found or not isinstance(space, Space) or verify_enabled(space, verify):
        return False
    found, videos = runtime.kept("has_videos")
    return found and videos is False
