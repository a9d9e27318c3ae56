"""Ingest jobs run in-process: batches, counts, progress, cancel/retry, URLs, the HTTP routes."""

from __future__ import annotations

import functools
import http.server
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from lookalike.services.api.app import create_app
from lookalike.services.catalog import jobs as job_queries
from lookalike.services.catalog.documents import IngestParams
from lookalike.services.errors import InvalidRequest, JobNotFound, JobStateConflict
from lookalike.services.jobs import runner as jobs
from lookalike.services.runtime import Runtime
from lookalike.services.setup import init_catalog, open_runtime
from tests.services.conftest import make_settings

pytestmark = pytest.mark.slow

LIMIT = 200_000


@pytest.fixture()
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    settings = make_settings(tmp_path / "home", job_batch_size=4)
    init_catalog(settings)
    runtime = open_runtime(settings)
    yield runtime
    runtime.close()


@pytest.fixture(scope="module")
def http_root(tmp_path_factory: pytest.TempPathFactory, photo_dir: Path) -> Iterator[str]:
    """A local HTTP server (127.0.0.1) serving the photo folder."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(photo_dir))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_a_path_job_runs_in_batches_and_counts_every_file(runtime: Runtime,
                                                          photo_dir: Path) -> None:
    photos = sorted(photo_dir.glob("*.jpg"))
    job = jobs.submit_ingest(runtime, paths=[str(photo_dir), str(photo_dir / "missing.jpg")],
                             wait=True)
    shown = jobs.describe(job)
    assert shown["state"] == "succeeded", shown
    assert shown["progress"]["done"] == shown["progress"]["total"] == len(photos) + 1
    assert shown["batches"] == {"total": -(-(len(photos) + 1) // 4),
                                "finished": -(-(len(photos) + 1) // 4)}
    assert shown["counts"] == {"added": len(photos), "duplicates": 0, "failed": 1, "regions": 0}
    assert "missing.jpg" in shown["errors"][0]
    again = jobs.describe(jobs.submit_ingest(runtime, paths=[str(photo_dir)], wait=True))
    assert again["counts"] == {"added": 0, "duplicates": len(photos), "failed": 0, "regions": 0}
    assert [j.id for j in jobs.list_jobs(runtime)] == [again["id"], shown["id"]]


def test_cancel_skips_batches_and_retry_runs_only_the_unfinished_ones(
        runtime: Runtime, photo_dir: Path) -> None:
    params = IngestParams(source="paths", batch_size=4,
                          items=[(str(p), None) for p in sorted(photo_dir.glob("*.jpg"))])
    count = len(params.items)
    with runtime.session() as session:
        job = job_queries.create_job(session=session, kind="ingest", params=params,
                                     total=count, batches=-(-count // 4))
        session.commit()
    jobs.run_batch(runtime, job.id, 0)
    assert jobs.get_job(runtime, job.id).state == "running"
    assert jobs.cancel(runtime, job.id).state == "cancelled"
    jobs.run_batch(runtime, job.id, 1)
    cancelled = jobs.describe(jobs.get_job(runtime, job.id))
    assert cancelled["progress"]["done"] == 4 and cancelled["state"] == "cancelled"
    with pytest.raises(JobStateConflict, match="already cancelled"):
        jobs.cancel(runtime, job.id)
    done = jobs.describe(jobs.retry(runtime, job.id, wait=True))
    assert done["state"] == "succeeded"
    assert done["counts"] == {"added": count, "duplicates": 0, "failed": 0, "regions": 0}
    with pytest.raises(JobStateConflict, match="only failed or cancelled"):
        jobs.retry(runtime, job.id)


def test_a_batch_that_raises_fails_alone_and_the_job_says_why(runtime: Runtime,
                                                              photo_dir: Path) -> None:
    job = jobs.submit_ingest(runtime, paths=[str(photo_dir)], wait=True)
    with runtime.session() as session:
        row = job_queries.get_job(session=session, job_id=job.id, lock=True)
        row.kind = "nonsense"  # a kind no runner knows: every batch raises
        row.state = "queued"
        row.result = row.result.model_copy(update={"batches": {}})
        session.commit()
    ended = jobs.run_job(runtime, job.id)
    assert ended.state == "failed"
    assert ended.error.startswith("batch 0: InvalidRequest") and "batch 1: " in ended.error


def test_url_jobs_download_with_limits(tmp_path: Path, http_root: str,
                                       photo_dir: Path) -> None:
    settings = make_settings(tmp_path / "home", max_upload_bytes=LIMIT,
                             fetch_allow=["127.0.0.1"])  # the test server is on loopback
    init_catalog(settings)
    runtime = open_runtime(settings)
    small = sorted(p.name for p in photo_dir.glob("*.jpg") if p.stat().st_size < LIMIT)[:3]
    big = next(p.name for p in photo_dir.glob("*.jpg") if p.stat().st_size > LIMIT)
    urls = [f"{http_root}/{name}" for name in small]
    urls += [f"{http_root}/absent.jpg", f"{http_root}/{big}", "file:///etc/passwd"]
    shown = jobs.describe(jobs.submit_ingest(runtime, urls=urls, wait=True))
    runtime.close()
    assert shown["state"] == "succeeded"
    assert shown["counts"] == {"added": 3, "duplicates": 0, "failed": 3, "regions": 0}
    errors = "\n".join(shown["errors"])
    assert "HTTP 404" in errors and "over the limit" in errors and "only http" in errors


def test_submit_needs_paths_or_urls_and_a_collection_that_fits(runtime: Runtime) -> None:
    with pytest.raises(InvalidRequest, match="either"):
        jobs.submit_ingest(runtime)
    with pytest.raises(InvalidRequest, match="201 characters"):
        jobs.submit_ingest(runtime, urls=["http://127.0.0.1:9/a.jpg"], collection="c" * 201)
    with pytest.raises(JobNotFound):
        jobs.get_job(runtime, 999)


def test_jobs_over_http(tmp_path: Path, photo_dir: Path) -> None:
    settings = make_settings(tmp_path / "home", job_batch_size=8, ingest_roots=[photo_dir])
    init_catalog(settings)
    with TestClient(create_app(settings)) as client:
        answer = client.post("/v1/jobs", json={"kind": "ingest", "paths": [str(photo_dir)]})
        assert answer.status_code == 202, answer.text
        job_id = answer.json()["id"]
        while (shown := client.get(f"/v1/jobs/{job_id}").json())["state"] in ("queued",
                                                                               "running"):
            time.sleep(0.2)
        assert shown["state"] == "succeeded", shown
        assert shown["counts"]["added"] == len(list(photo_dir.glob("*.jpg")))
        assert client.get("/v1/jobs").json()[0]["id"] == job_id
        assert client.get("/v1/jobs/999").status_code == 404
        conflict = client.post(f"/v1/jobs/{job_id}/cancel")
        assert conflict.status_code == 409 and conflict.json()["error"] == "job_state_conflict"
        bad = client.post("/v1/jobs", json={"kind": "ingest"})
        assert bad.status_code == 422 and "either" in bad.json()["detail"]
