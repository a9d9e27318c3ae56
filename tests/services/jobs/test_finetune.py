"""Fine-tuning jobs end to end on real Fashion-MNIST images in a real catalog: a head on cached
vectors and a LeNet-5 from scratch must raise validation mAP, end with a usable space, draw
their curves, stop when cancelled and resume from their checkpoint."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from lookalike.retrieval.models.weights import file_sha256
from lookalike.services.api.app import create_app
from lookalike.services.bench.search import free_port, start_server
from lookalike.services.catalog import spaces as space_queries
from lookalike.services.config import Settings
from lookalike.services.errors import InvalidRequest
from lookalike.services.jobs import runner as jobs
from lookalike.services.runtime import Runtime
from lookalike.services.sample import build_sample
from lookalike.services.search.query import search_vector
from lookalike.services.setup import init_catalog, open_runtime
from lookalike.services.spaces.lifecycle import delete_space
from lookalike.services.spaces.lookup import find_space
from lookalike.services.training.request import FinetuneRequest
from tests.services.conftest import fill_space, ingest_into, make_settings

pytestmark = pytest.mark.slow

PER_CLASS = 40


@pytest.fixture(scope="module")
def fashion_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """A catalog of 400 labelled Fashion-MNIST images (40 per class), embedded once."""
    root = tmp_path_factory.mktemp("fashion")
    build_sample(root / "data", fashion_per_class=PER_CLASS)
    settings = make_settings(root / "home")
    init_catalog(settings)
    runtime = open_runtime(settings)
    summary = ingest_into(runtime, root / "data" / "fashion-mnist", label_from_dir=True)
    runtime.close()
    assert summary.added == 10 * PER_CLASS
    return settings


@pytest.fixture()
def runtime(fashion_settings: Settings) -> Iterator[Runtime]:
    runtime = open_runtime(fashion_settings)
    yield runtime
    runtime.close()


def _finished(runtime: Runtime, request: FinetuneRequest) -> dict:
    job = jobs.submit_finetune(runtime, request, wait=True)
    return jobs.describe(jobs.get_job(runtime, job.id))


def test_head_on_cached_vectors_raises_map_and_makes_a_searchable_space(
        runtime: Runtime) -> None:
    job = _finished(runtime, FinetuneRequest(space="fm-head", method="head", loss="softmax",
                                             hidden=256, epochs=6, seed=1))
    training = job["training"]
    assert job["state"] == "succeeded", job["error"]
    assert [row["epoch"] for row in training["history"]] == [1, 2, 3, 4, 5, 6]
    assert training["history"][-1]["val_map"] > training["baseline_val_map"] + 0.05
    layout = runtime.settings.layout
    assert layout.resolve(training["curves"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    head_file = layout.resolve(training["head_file"])
    assert head_file.parent == runtime.settings.layout.weights
    counts = fill_space(runtime, "fm-head")
    assert counts["added"] == 10 * PER_CLASS and not counts["failed"]
    answer = search_vector(runtime, space_name="fm-head", k=5, image_id=1)
    assert answer.results[0].image_id == 1
    assert answer.space == "fm-head"


def test_lenet_from_scratch_learns_and_publishes_its_weights(runtime: Runtime) -> None:
    job = _finished(runtime, FinetuneRequest(
        space="fm-lenet", method="backbone", backbone="lenet5", weights="none",
        loss="contrastive", margin=0.7, pooling="gap", epochs=4, lr=3e-3, augment=["mirror"],
        seed=2))
    training = job["training"]
    assert job["state"] == "succeeded", job["error"]
    assert training["history"][-1]["val_map"] > training["baseline_val_map"] + 0.05
    assert training["weights_file"].startswith("weights/"), "recorded relative to the home"
    weights = runtime.settings.layout.resolve(training["weights_file"])
    assert weights.parent == runtime.settings.layout.weights
    assert file_sha256(weights) == training["weights_sha256"]
    assert fill_space(runtime, "fm-lenet")["added"] == 10 * PER_CLASS
    kept = {p: p.read_bytes() for p in runtime.settings.layout.weights.iterdir() if p != weights}
    deleted = delete_space(runtime, name="fm-lenet")
    assert deleted.trained_files == [str(weights.resolve())] and not weights.exists()
    assert {p: p.read_bytes() for p in runtime.settings.layout.weights.iterdir()} == kept


@pytest.mark.parametrize("backbone", ["zfnet_small", "nin_small", "googlenet_small"])
def test_every_textbook_network_trains_from_scratch_into_a_space(runtime: Runtime,
                                                                  backbone: str) -> None:
    job = _finished(runtime, FinetuneRequest(
        space=f"fm-{backbone}", method="backbone", backbone=backbone, weights="none",
        loss="softmax", pooling="gap", epochs=1, batch_size=32, limit=120, augment=[], seed=3))
    assert job["state"] == "succeeded", job["error"]
    assert len(job["training"]["history"]) == 1
    assert fill_space(runtime, f"fm-{backbone}")["added"] == 10 * PER_CLASS
    answer = search_vector(runtime, space_name=f"fm-{backbone}", k=3, image_id=1)
    assert len(answer.results) == 3 and answer.results[0].score > 0.99  # itself, or a tie


RESUME_REQUEST = dict(method="backbone", backbone="lenet5", weights="none", loss="softmax",
                      pooling="gap", epochs=4, augment=["mirror", "random_crop"], seed=3)


@pytest.mark.integration
def test_a_killed_job_resumes_and_ends_where_an_uninterrupted_one_does(
        runtime: Runtime, fashion_settings: Settings) -> None:
    whole = _finished(runtime, FinetuneRequest(space="fm-whole", **RESUME_REQUEST))
    # The killed command's lease on the job lapses after 5 s; then the server takes it over.
    env = {**os.environ, "LOOKALIKE_HOME": str(fashion_settings.home),
           "LOOKALIKE_DECODE_WORKERS": str(fashion_settings.decode_workers),
           "LOOKALIKE_JOB_LEASE_S": "5"}
    args = ["finetune", "fm-cut", "--method", "backbone", "--backbone", "lenet5", "--weights",
            "none", "--loss", "softmax", "--pooling", "gap", "--epochs", "4", "--augment",
            "mirror,random_crop", "--seed", "3"]
    process = subprocess.Popen([sys.executable, "-m", "lookalike.services.cli", *args], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        job_id = _wait_for(lambda: _job_with_an_epoch(runtime, "fm-cut"), process)
    finally:
        process.kill()
        process.wait(timeout=30)
    cut = jobs.get_job(runtime, job_id)
    assert cut.state == "running" and len(cut.result.history or []) < 4

    port = free_port()
    server = start_server(fashion_settings, port, extra_env=env)
    try:
        _wait_for(lambda: jobs.get_job(runtime, job_id).state != "running", server)
    finally:
        server.terminate()
        server.wait(timeout=30)
    resumed = jobs.describe(jobs.get_job(runtime, job_id))
    assert resumed["state"] == "succeeded", resumed["error"]
    ours = [row["val_map"] for row in resumed["training"]["history"]]
    theirs = [row["val_map"] for row in whole["training"]["history"]]
    assert len(ours) == 4
    assert ours[-1] == pytest.approx(theirs[-1], abs=0.01)


def _job_with_an_epoch(runtime: Runtime, space: str) -> int | None:
    """The id of the fine-tuning job creating `space` once it has finished an epoch."""
    for job in jobs.list_jobs(runtime, limit=20):
        if job.kind == "finetune" and job.params.request["space"] == space:
            return job.id if len(job.result.history or []) >= 1 else None
    return None


def _wait_for(found, process: subprocess.Popen, timeout_s: float = 300.0):
    """Poll `found` until it gives a truthy value; fail if the process dies first."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = found()
        if value:
            return value
        assert process.poll() is None, "the process ended before the awaited state"
        time.sleep(0.2)
    raise AssertionError(f"nothing after {timeout_s:.0f} s")


def test_a_cancelled_job_stops_and_creates_no_space(runtime: Runtime) -> None:
    job = jobs.submit_finetune(runtime, FinetuneRequest(
        space="fm-cancelled", method="backbone", backbone="lenet5", weights="none",
        loss="softmax", pooling="gap", epochs=50, seed=4))
    _wait_for(lambda: _job_with_an_epoch(runtime, "fm-cancelled"), _AliveThread())
    jobs.cancel(runtime, job.id)
    deadline = time.monotonic() + 60
    while any(t.name == f"job-{job.id}" for t in threading.enumerate()):
        assert time.monotonic() < deadline, "the job's thread did not stop"
        time.sleep(0.2)
    stopped = jobs.describe(jobs.get_job(runtime, job.id))
    assert stopped["state"] == "cancelled"
    assert len(stopped["training"]["history"]) < 50
    assert "space" not in stopped["training"]
    with runtime.session() as session:
        assert space_queries.get_space(session=session, name="fm-cancelled") is None


class _AliveThread:
    """Stands in for a process in `_wait_for` when the work runs on a thread here."""

    def poll(self) -> None:
        return None


def test_requests_that_cannot_work_are_refused_at_submit(runtime: Runtime) -> None:
    with pytest.raises(InvalidRequest, match="already exists"):
        jobs.submit_finetune(runtime, FinetuneRequest(space=_default_space(runtime)))
    with pytest.raises(InvalidRequest, match="no pretrained weights"):
        jobs.submit_finetune(runtime, FinetuneRequest(space="x", method="backbone",
                                                      backbone="lenet5"))
    with pytest.raises(InvalidRequest, match="does not exist"):
        jobs.submit_finetune(runtime, FinetuneRequest(space="x", method="backbone",
                                                      weights="/nonexistent.pt"))


def _default_space(runtime: Runtime) -> str:
    with runtime.session() as session:
        return find_space(session=session, name=None).name


def test_the_api_runs_a_finetune_job_and_serves_its_curves(
        fashion_settings: Settings) -> None:
    with TestClient(create_app(fashion_settings)) as client:
        refused = client.post("/v1/jobs", json={"kind": "finetune", "space": "fm-api",
                                                "augment": ["sepia"]})
        assert refused.status_code == 422
        assert "sepia" in refused.text
        answer = client.post("/v1/jobs", json={"kind": "finetune", "space": "fm-api",
                                               "method": "head", "epochs": 2, "loss": "softmax"})
        assert answer.status_code == 202, answer.text
        job_id = answer.json()["id"]
        deadline = time.monotonic() + 120
        while (shown := client.get(f"/v1/jobs/{job_id}").json())["state"] in ("queued",
                                                                              "running"):
            assert time.monotonic() < deadline, shown
            time.sleep(0.2)
        assert shown["state"] == "succeeded", shown["error"]
        assert [row["epoch"] for row in shown["training"]["history"]] == [1, 2]
        curves = client.get(f"/v1/jobs/{job_id}/curves.png")
        assert curves.status_code == 200
        assert curves.headers["content-type"] == "image/png"
        spaces = {s["name"]: s for s in client.get("/v1/spaces").json()}
        assert spaces["fm-api"]["dim"] == 128
