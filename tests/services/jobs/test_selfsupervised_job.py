"""A self-supervised copy-space job end to end on the bundled photos, asked over HTTP: one
epoch of MobileNetV2 at 64 px writes its augmentation grid and curves and publishes a space
stored by sha256 that finds each photo first for itself; the grid is served over HTTP."""

from __future__ import annotations

import time

import torch
from fastapi.testclient import TestClient

from lookalike.retrieval.models.weights import file_sha256
from lookalike.services.api.app import create_app
from lookalike.services.runtime import Runtime
from lookalike.services.search.query import search_vector
from lookalike.services.spaces.lookup import build_embedder, find_space
from tests.services.conftest import fill_space

PNG = b"\x89PNG\r\n\x1a\n"
REQUEST = {"kind": "finetune", "space": "copy-space", "method": "self-supervised",
           "epochs": 1, "batch_size": 8, "input_size": 64, "val_fraction": 0.2, "seed": 0}


def _finished(client: TestClient, job_id: int) -> dict:
    deadline = time.monotonic() + 120
    while (shown := client.get(f"/v1/jobs/{job_id}").json())["state"] in ("queued", "running"):
        assert time.monotonic() < deadline, shown
        time.sleep(0.2)
    return shown


def test_a_self_supervised_job_publishes_a_copy_space(photo_home: Runtime) -> None:
    torch.set_num_threads(1)
    with TestClient(create_app(photo_home.settings)) as client:
        refused = client.post("/v1/jobs", json={**REQUEST, "method": "backbone", "loss": "sscd"})
        assert refused.status_code == 422 and "self-supervised" in refused.text
        answer = client.post("/v1/jobs", json=REQUEST)
        assert answer.status_code == 202, answer.text
        shown = _finished(client, answer.json()["id"])
        grid = client.get(f"/v1/jobs/{shown['id']}/augmentations.png")
        assert grid.status_code == 200 and grid.content[:8] == PNG
    assert shown["state"] == "succeeded", shown["error"]
    training, layout = shown["training"], photo_home.settings.layout
    assert [row["epoch"] for row in training["history"]] == [1]
    assert training["train_images"] + training["val_images"] == 23
    assert 0 < training["baseline_val_map"] <= 1 and 0 < training["history"][0]["val_map"] <= 1
    for key in ("augmentations", "curves"):
        assert layout.resolve(training[key]).read_bytes()[:8] == PNG
    with photo_home.read_session() as session:
        space = find_space(session=session, name="copy-space")
    assert space.options.input_size == 64 and space.pooling == "gem" and space.dim == 1280
    assert build_embedder(space, settings=photo_home.settings).input_size == 64  # as trained
    weights = layout.resolve(space.options.weights_file)
    assert file_sha256(weights) == space.weights_sha256 == training["weights_sha256"]
    assert fill_space(photo_home, "copy-space")["added"] == 23
    answer = search_vector(photo_home, space_name="copy-space", k=3, image_id=5)
    assert answer.results[0].image_id == 5
