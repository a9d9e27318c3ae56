"""A job interrupted with the process that ran it is finished by the next `lookalike serve`."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from lookalike.services.bench.search import free_port, start_server
from lookalike.services.catalog import jobs as job_queries
from lookalike.services.catalog.documents import IngestParams
from lookalike.services.ingest.sources import collect_items
from lookalike.services.jobs import runner as jobs
from lookalike.services.setup import init_catalog, open_runtime
from tests.services.conftest import make_settings

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def test_a_half_done_job_is_finished_after_a_restart(tmp_path: Path, photo_dir: Path) -> None:
    settings = make_settings(tmp_path / "home", job_batch_size=8)
    init_catalog(settings)
    runtime = open_runtime(settings)
    items: list[tuple[str, str | None]] = [(str(item.path), None)
                                           for item in collect_items([photo_dir])]
    params = IngestParams(source="paths", items=items, batch_size=8)
    with runtime.session() as session:
        job = job_queries.create_job(session=session, kind="ingest", params=params,
                                     total=len(items), batches=-(-len(items) // 8))
        session.commit()
    jobs.run_batch(runtime, job.id, 0)
    with runtime.session() as session:
        assert job_queries.start_batch(session=session, job_id=job.id, batch=1)
        session.commit()
    runtime.close()

    port = free_port()
    server = start_server(settings, port)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                shown = client.get(f"/v1/jobs/{job.id}").json()
                if shown["state"] != "running":
                    break
                time.sleep(0.5)
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert shown["state"] == "succeeded", shown
    assert shown["counts"] == {"added": len(items), "duplicates": 0, "failed": 0}
    assert shown["progress"]["done"] == len(items)
