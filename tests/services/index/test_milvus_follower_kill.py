"""A real `lookalike index follow` process SIGKILLed in the middle of a batch: the watermark in
the catalog has not moved, the collection holds part of the batch, and the next follower
replays it to exactly the catalog's vectors (nothing lost, nothing twice)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np

from lookalike.services.catalog import followers as follower_queries
from lookalike.services.catalog import images as image_queries
from lookalike.services.config import Settings
from lookalike.services.index.following import follow_once
from lookalike.services.index.milvus_store import MilvusCollection, collection_name
from lookalike.services.index.verify import verify_all
from lookalike.services.search.query import search_vector
from lookalike.services.setup import init_catalog, open_runtime
from tests.services.conftest import make_settings
from tests.services.index.test_milvus import (
    DIM,
    add_images,
    make_space,
    unit_rows,
    write_vectors,
)

FIRST = 100
PENDING = 3000
CHUNK = 100


def start_follower(settings: Settings) -> subprocess.Popen:
    env = {**os.environ, "LOOKALIKE_HOME": str(settings.home)}
    return subprocess.Popen(
        [sys.executable, "-m", "lookalike.services.cli", "-v", "index", "follow", "--batch",
         str(PENDING * 2), "--chunk", str(CHUNK)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def kill_after_first_chunk(process: subprocess.Popen) -> list[str]:
    """SIGKILL the follower once it logs its first chunk of the batch (or after a minute, a
    failure); its log lines."""
    lines = []
    assert process.stderr is not None
    deadline = threading.Timer(60, process.kill)
    deadline.start()
    for line in process.stderr:
        lines.append(line)
        if f": {CHUNK} of " in line and "rows written" in line:
            process.send_signal(signal.SIGKILL)
            break
    deadline.cancel()
    process.wait(timeout=30)
    return lines


def test_a_follower_killed_mid_batch_replays_to_an_exact_match(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "home")
    init_catalog(settings)
    rng = np.random.default_rng(3)
    with open_runtime(settings) as runtime:
        space = make_space(runtime, "lite", "milvus")
        ids = add_images(runtime, FIRST + PENDING)
        write_vectors(runtime, space, ids[:FIRST], unit_rows(rng, FIRST))
        search_vector(runtime, space_name="lite", k=5, image_id=ids[0])  # creates, fills
        with runtime.read_session() as session:
            start = follower_queries.follower_watermark(session=session, space_id=space.id)
    with open_runtime(settings) as runtime:  # the changes the follower will find pending
        write_vectors(runtime, space, ids[FIRST:], unit_rows(rng, PENDING))
        write_vectors(runtime, space, ids[:10], unit_rows(rng, 10))  # new vectors: stale
        with runtime.session() as session:
            for image_id in ids[10:20] + ids[FIRST:FIRST + 5]:
                image_queries.mark_image_deleted(session=session, image_id=image_id)
            session.commit()

    process = start_follower(settings)
    lines = kill_after_first_chunk(process)
    assert process.returncode == -signal.SIGKILL, "".join(lines[-20:])

    with open_runtime(settings) as runtime:
        with runtime.read_session() as session:
            assert follower_queries.follower_watermark(session=session,
                                                       space_id=space.id) == start
        store = MilvusCollection(runtime.milvus(), collection_name(settings, space), DIM)
        store.open(space.options.milvus_index)
        live = sorted(set(ids) - set(ids[10:20] + ids[FIRST:FIRST + 5]))
        held = store.count()
        assert FIRST - 10 < held < len(live), "the kill landed outside the batch"
        assert follow_once(runtime, batch=PENDING * 2, chunk=CHUNK) > PENDING
        assert sorted(e.image_id for e in store.entities()) == live
        assert all(report.ok for report in verify_all(runtime))
