"""Bringing a catalog to the current schema, and refusing to run on one that is not."""

from __future__ import annotations

from alembic.script import ScriptDirectory

from lookalike.services.catalog.migrate import alembic_config, current_revision, upgrade
from lookalike.services.catalog.spaces import get_default_space
from lookalike.services.config import Settings
from lookalike.services.errors import CatalogNotReady
from lookalike.services.jobs.launch import launcher_for
from lookalike.services.openmp import check_openmp_threads, set_openmp_threads
from lookalike.services.runtime import Runtime


def head_revision(url: str) -> str | None:
    return ScriptDirectory.from_config(alembic_config(url)).get_current_head()


def init_catalog(settings: Settings) -> str:
    """Create or migrate the catalog to the newest schema; returns the revision it is at."""
    settings.home.mkdir(parents=True, exist_ok=True)
    upgrade(settings.catalog_url)
    return current_revision(settings.catalog_url) or ""


def open_runtime(settings: Settings) -> Runtime:
    """A runtime on a catalog that is at the schema this code expects."""
    current = current_revision(settings.catalog_url)
    head = head_revision(settings.catalog_url)
    if current != head:
        state = "has no schema" if current is None else f"is at revision {current}, not {head}"
        raise CatalogNotReady(f"the catalog ({settings.catalog_url_shown}) {state}; "
                              "run `lookalike init` first")
    configure_threads(settings)
    return Runtime(settings, launcher=launcher_for(settings))


def configure_threads(settings: Settings) -> None:
    """Torch's process-wide thread count, set once as a process opens its runtime (a CLI
    command, the API's lifespan, a worker's first task), never by an embedder; a training
    epoch takes more for its duration (services/training/threads.py). FAISS's is set by the
    `lookalike` command before it loads (services/openmp.py); here it is set for a process
    that opens a runtime before loading FAISS, and checked."""
    set_openmp_threads(settings)
    check_openmp_threads(settings)
    import torch

    torch.set_num_threads(settings.torch_threads or 1)


def warm_up(runtime: Runtime) -> None:
    """Load the default space's model and index replica now, and run the model at each batch
    size of concurrent queries that gets a compiled shape, so the first searches are as fast
    as the rest; a catalog without spaces has nothing to load."""
    with runtime.read_session() as session:
        space = get_default_space(session=session)
        if space is None:
            return
        runtime.query_batcher(space).warm(max(1, runtime.settings.engine_static_shapes))
        runtime.replica(space, session=session)
