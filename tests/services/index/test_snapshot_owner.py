"""A snapshot names the space it was written for by something never given out twice (its id,
never reused since revision 0005, and its creation time): a space never loads another's."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from lookalike.retrieval.index.snapshot import list_snapshots
from lookalike.services.catalog import embeddings as embedding_queries
from lookalike.services.catalog.models import Space
from lookalike.services.index.replicas import space_directory
from lookalike.services.index.snapshots import snapshot_all
from lookalike.services.index.verify import verify_all
from lookalike.services.runtime import Runtime
from lookalike.services.setup import init_catalog, open_runtime
from lookalike.services.spaces.lifecycle import delete_space
from lookalike.services.spaces.lookup import find_space
from tests.services.conftest import make_settings, synthetic_space

REPLICAS = "lookalike.services.index.replicas"


@pytest.fixture()
def runtime(tmp_path: Path, database_url: str) -> Iterator[Runtime]:
    """A catalog (SQLite, PostgreSQL) whose default space `keeper` lets others be deleted."""
    settings = make_settings(tmp_path / "home", database_url)
    init_catalog(settings)
    runtime = open_runtime(settings)
    synthetic_space(runtime, "keeper", count=3)
    yield runtime
    runtime.close()


def catalog_ids(runtime: Runtime, space: Space) -> set[int]:
    with runtime.session() as session:
        return {i for ids, _, _ in embedding_queries.iter_vectors(session=session,
                                                                 space_id=space.id)
                for i in ids}


def test_a_new_space_never_loads_the_snapshot_of_a_deleted_one(
        runtime: Runtime, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    indexes = runtime.settings.layout.indexes
    old = synthetic_space(runtime, "old", count=30, seed=1)
    [written] = snapshot_all(runtime, space_name="old")
    [manifest] = list_snapshots(space_directory(indexes, old))
    assert (manifest.extra["space_id"], manifest.extra["space_created_at"]) == (
        old.id, old.created_at.isoformat())
    # The files outlive the delete (a snapshot that another process finished writing after
    # it), and sit where the next space reads: with its own id, only a copy puts them there.
    survivor = shutil.copytree(space_directory(indexes, old), tmp_path / "survivor")
    delete_space(runtime, name="old")
    new = synthetic_space(runtime, "new", count=7, seed=2)
    assert new.id != old.id
    shutil.copytree(survivor, space_directory(indexes, new), dirs_exist_ok=True)

    fresh = open_runtime(runtime.settings)  # a process that has loaded nothing yet
    with caplog.at_level(logging.WARNING), fresh.session() as session:
        replica = fresh.replica(find_space(session=session, name="new"), session=session)
    fresh.close()
    assert set(replica.ids().tolist()) == catalog_ids(runtime, new)
    assert any(written.file in r.getMessage() and "ignored" in r.getMessage()
               for r in caplog.records), caplog.text
    assert all(report.ok for report in verify_all(runtime))


def test_a_space_still_loads_its_own_snapshot(runtime: Runtime,
                                             caplog: pytest.LogCaptureFixture) -> None:
    space = synthetic_space(runtime, "own", count=12, seed=3)
    [written] = snapshot_all(runtime, space_name="own")
    fresh = open_runtime(runtime.settings)
    with caplog.at_level(logging.INFO, logger=REPLICAS), fresh.session() as session:
        replica = fresh.replica(find_space(session=session, name="own"), session=session)
    fresh.close()
    assert f"space own: snapshot at seq {written.watermark} loaded" in caplog.messages
    assert np.array_equal(replica.ids(), np.array(sorted(catalog_ids(runtime, space))))
