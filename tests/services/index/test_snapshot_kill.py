"""A `lookalike serve` process SIGKILLed while it writes an index snapshot: the previous
snapshot still loads, the restarted process catches up with the catalog, `index verify`
finds nothing to fix, and the half-written temp file trips no later snapshot."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from sqlalchemy import select

from lookalike.retrieval.index.snapshot import SnapshotManifest, list_snapshots
from lookalike.services.bench.search import free_port, start_server
from lookalike.services.bench.synthetic import SYNTHETIC_COLLECTION, add_synthetic_images
from lookalike.services.catalog.models import Image
from lookalike.services.config import Settings
from lookalike.services.index.replicas import space_directory
from lookalike.services.index.snapshots import snapshot_all
from lookalike.services.setup import init_catalog, open_runtime
from lookalike.services.spaces.lookup import find_space
from tests.conftest import _fresh_postgres_database
from tests.services.conftest import ingest_into, make_settings

pytestmark = [pytest.mark.slow, pytest.mark.integration]

# 40,000 vectors of 1280 floats: a 200 MB snapshot, written for long enough to be caught
# (the kill is tried again when a write ends first).
SYNTHETIC = 40_000
ATTEMPTS = 5


def split_photos(photo_dir: Path, root: Path) -> tuple[Path, Path]:
    """The photos in two folders: one ingested before the first snapshot, one after it."""
    halves = (root / "before", root / "after")
    for half in halves:
        half.mkdir()
    for i, path in enumerate(sorted(photo_dir.iterdir())):
        (halves[i % 2] / path.name).write_bytes(path.read_bytes())
    return halves


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory,
            photo_dir: Path) -> Iterator[tuple[Settings, Path]]:
    """A PostgreSQL catalog whose space holds half the photos and many synthetic vectors, a
    snapshot of them, and then the other half of the photos (changes after the snapshot)."""
    root = tmp_path_factory.mktemp("snapshot-kill")
    before, after = split_photos(photo_dir, root)
    database = _fresh_postgres_database()
    settings = make_settings(root / "home", next(database))
    init_catalog(settings)
    runtime = open_runtime(settings)
    ingest_into(runtime, before)
    with runtime.session() as session:
        space = find_space(session=session, name=None)
    for _ in add_synthetic_images(runtime, space_id=space.id, dim=space.dim, count=SYNTHETIC):
        pass
    snapshot_all(runtime)
    ingest_into(runtime, after)
    runtime.close()
    yield settings, space_directory(settings.layout.indexes, space)
    next(database, None)


def temp_files(directory: Path) -> list[Path]:
    """Half-written snapshot files: what `write_atomic` names `.<file>.<random>.tmp`."""
    return sorted(directory.glob(".snapshot-*.tmp"))


def kill_while_writing(settings: Settings, port: int,
                       directory: Path) -> tuple[list[Path], list[SnapshotManifest]]:
    """Start a server, ask it for a snapshot and SIGKILL it once the index file's temp file
    appears; tried again when the write ends first. Returns the temp files left and the
    snapshots there were before the write that was cut short."""
    for _ in range(ATTEMPTS):
        server = start_server(settings, port)
        before = list_snapshots(directory)
        request = threading.Thread(target=post_snapshot, args=(port,), daemon=True)
        request.start()
        while request.is_alive() and not list(directory.glob(".snapshot-*.faiss.*.tmp")):
            time.sleep(0.001)
        if request.is_alive():
            os.kill(server.pid, signal.SIGKILL)
            server.wait()
            if temp_files(directory):
                return temp_files(directory), before
        else:
            server.terminate()
            server.wait(timeout=30)
    pytest.fail(f"no snapshot write was caught in {ATTEMPTS} attempts")


def post_snapshot(port: int) -> None:
    # The server is killed under this request on purpose: the broken connection is expected.
    with contextlib.suppress(httpx.TransportError):
        httpx.post(f"http://127.0.0.1:{port}/v1/admin/snapshots", timeout=120)


def catalog_ids(settings: Settings) -> tuple[list[int], list[int]]:
    """Ids of the real photos and of the synthetic images."""
    runtime = open_runtime(settings)
    with runtime.session() as session:
        rows = session.execute(select(Image.id, Image.collection)).all()
    runtime.close()
    photos = [i for i, collection in rows if collection != SYNTHETIC_COLLECTION]
    return photos, [i for i, collection in rows if collection == SYNTHETIC_COLLECTION]


def top_id(client: httpx.Client, image_id: int) -> int:
    answer = client.post("/v1/search", params={"k": 1}, json={"image_id": image_id})
    assert answer.status_code == 200, answer.text
    return answer.json()["results"][0]["image_id"]


def verify(settings: Settings) -> subprocess.CompletedProcess:
    env = {**os.environ, "LOOKALIKE_HOME": str(settings.home),
           "LOOKALIKE_DATABASE_URL": str(settings.database_url)}
    return subprocess.run([sys.executable, "-m", "lookalike.services.cli",
                           "index", "verify"], env=env,
                          capture_output=True, text=True, timeout=600)


def test_a_server_killed_while_writing_a_snapshot_restarts_on_the_previous_one(
        catalog: tuple[Settings, Path], tmp_path: Path) -> None:
    settings, directory = catalog
    port = free_port()
    leftovers, before = kill_while_writing(settings, port, directory)

    assert leftovers, "the kill did not land while a snapshot was being written"
    assert list_snapshots(directory) == before
    server = start_server(settings, port, log=tmp_path / "restarted.log")
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            ready = client.get("/readyz")
            assert ready.status_code == 200, ready.text
            log = (tmp_path / "restarted.log").read_text()
            assert f"snapshot at seq {before[0].watermark} loaded" in log
            photos, synthetic = catalog_ids(settings)
            assert all(top_id(client, i) == i for i in photos)
            sample = np.random.default_rng(0).choice(synthetic, size=50, replace=False)
            assert all(top_id(client, int(i)) == i for i in sample)
            checked = verify(settings)
            assert checked.returncode == 0, checked.stdout + checked.stderr
            assert "index matches the catalog" in checked.stdout

            # The next snapshot is not disturbed by the leftovers, and removes them once stale.
            for leftover in leftovers:
                os.utime(leftover, (time.time() - 3600, time.time() - 3600))
            written = client.post("/v1/admin/snapshots")
            assert written.status_code == 201, written.text
    finally:
        server.terminate()
        server.wait(timeout=30)
    newest = list_snapshots(directory)[0]
    assert newest.file == written.json()[0]["file"]
    assert newest.watermark == ready.json()["spaces"][newest.extra["space"]]["catalog_seq"]
    assert temp_files(directory) == []
