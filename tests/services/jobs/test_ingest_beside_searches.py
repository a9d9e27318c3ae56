"""An ingest job on a `lookalike serve` whose workers embed what they decode (forked from the
server while its threads answer searches with the same model) ends with every image added,
and every search meanwhile is answered."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx
import pytest

from lookalike.services.bench.ingest import write_photo_files
from lookalike.services.bench.search import free_port, start_server
from lookalike.services.setup import init_catalog, open_runtime
from tests.services.conftest import ingest_into, make_settings
from tests.services.jobs.servers import poll

pytestmark = [pytest.mark.slow, pytest.mark.integration]

NEW_PHOTOS = 96
CLIENTS = 4


def test_a_job_forks_its_embedding_workers_while_searches_run(tmp_path: Path,
                                                                photo_dir: Path) -> None:
    settings = make_settings(tmp_path / "home")
    init_catalog(settings)
    with open_runtime(settings) as runtime:
        ingest_into(runtime, photo_dir)
    new = write_photo_files(tmp_path / "new", NEW_PHOTOS, seed=3)
    env = {"LOOKALIKE_INGEST_ROOTS": str(tmp_path / "new"), "LOOKALIKE_JOB_BATCH_SIZE": "8",
           "LOOKALIKE_DECODE_WORKERS": "2", "LOOKALIKE_TORCH_THREADS": "1",
           "LOOKALIKE_EMBED_IN_WORKERS": "true", "LOOKALIKE_RATE_SEARCH_UPLOAD": "100000/minute"}
    port = free_port()
    process = start_server(settings, port, extra_env=env)
    statuses: list[int] = []
    stop = threading.Event()
    query = sorted(photo_dir.glob("*.jpg"))[0].read_bytes()

    def search(client: httpx.Client) -> None:
        while not stop.is_set():
            answer = client.post("/v1/search", params={"k": 3},
                                 files={"file": ("q.jpg", query)})
            statuses.append(answer.status_code)

    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            searchers = [threading.Thread(target=search, args=(client,))
                         for _ in range(CLIENTS)]
            for thread in searchers:
                thread.start()
            answer = client.post("/v1/jobs", json={"kind": "ingest",
                                                   "paths": [str(tmp_path / "new")]})
            assert answer.status_code == 202, answer.text
            shown = poll(client, int(answer.json()["id"]),
                         lambda s: s["state"] not in ("queued", "running"), "end")
            stop.set()
            for thread in searchers:
                thread.join(timeout=60)
            assert shown["state"] == "succeeded", shown
            assert shown["counts"]["added"] == NEW_PHOTOS, shown
            assert statuses and set(statuses) == {200}, sorted(set(statuses))
            for path in new[::24]:
                found = client.post("/v1/search", params={"k": 1},
                                    files={"file": ("q.jpg", path.read_bytes())}).json()
                assert found["results"][0]["source"] == str(path.resolve())
                assert found["results"][0]["score"] == pytest.approx(1.0, abs=1e-3)
    finally:
        process.terminate()
        process.wait(timeout=30)
