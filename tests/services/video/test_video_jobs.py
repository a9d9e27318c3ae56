"""Video-classifier training jobs on a real SQLite catalog: a short run publishes the model
by sha256 as the default, ingest labels new videos with it, search filters by that label
(video_label=), and a cancelled job, or one whose server is killed, resumes from its
checkpoint."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from lookalike.services.api.app import create_app
from lookalike.services.catalog.models import Video
from lookalike.services.ingest.videos import ingest_video_bytes
from lookalike.services.jobs import runner as jobs
from lookalike.services.runtime import Runtime
from lookalike.services.setup import init_catalog, open_runtime
from lookalike.services.storage.backup import backup_home
from lookalike.services.storage.verify import verify_storage
from lookalike.services.video.registry import registry
from lookalike.services.video.request import VideoTrainRequest
from tests.services.conftest import make_settings
from tests.services.jobs.servers import finish_on_a_new_server, submit_then_kill
from tests.services.text.test_text_jobs import Held
from tests.videofactory import Shot, write_clip

# Colours far apart, so a tiny net trained two epochs answers well past the borderline.
COLOURS = {"red": (210, 40, 40), "blue": (40, 40, 210)}
SMALL = {"epochs": 2, "batch_size": 4, "lr": 0.01, "frames": 4, "size": 16}
CLIP_SIZE = (32, 32)
EPOCHS = 6  # the killed job's: long enough that the kill lands mid-way


def _clip(colour: tuple[int, int, int], rng: np.random.Generator, frames: int = 8) -> bytes:
    jitter = rng.integers(-25, 26, size=3)
    shade = tuple(int(np.clip(c + j, 0, 255)) for c, j in zip(colour, jitter, strict=True))
    return write_clip([Shot(frames, shade)], size=CLIP_SIZE)


def write_clips(folder: Path, per_class: int = 8, seed: int = 0) -> Path:
    """A CLASS/*.mp4 folder of short single-colour clips."""
    rng = np.random.default_rng(seed)
    for name, colour in COLOURS.items():
        (folder / name).mkdir(parents=True)
        for index in range(per_class):
            (folder / name / f"{index}.mp4").write_bytes(_clip(colour, rng))
    return folder


@pytest.fixture()
def trained(tmp_path: Path) -> Iterator[tuple[Runtime, dict]]:
    settings = make_settings(tmp_path / "home", ingest_roots=[tmp_path], torch_threads=1)
    init_catalog(settings)
    runtime = open_runtime(settings)
    request = VideoTrainRequest(source=str(write_clips(tmp_path / "clips")), task="colour",
                                **SMALL)
    job = jobs.submit_video_train(runtime, request, wait=True)
    yield runtime, jobs.describe(job)
    runtime.close()


def test_a_short_job_publishes_the_default_classifier_and_ingest_uses_it(trained) -> None:
    runtime, job = trained
    assert job["state"] == "succeeded", job["error"]
    training = job["training"]
    assert [row["epoch"] for row in training["history"]] == [1, 2]
    layout = runtime.settings.layout
    assert layout.resolve(training["curves"]).is_file()
    assert training["figures"]["accuracy"] == 1.0, training["figures"]
    model_file = layout.resolve(training["weights_file"])
    assert hashlib.sha256(model_file.read_bytes()).hexdigest() == training["weights_sha256"]
    document = registry(runtime.settings)
    assert document["default"] == "colour"
    assert document["classifiers"]["colour"]["classes"] == ["blue", "red"]

    rng = np.random.default_rng(7)
    blue = ingest_video_bytes(runtime, _clip(COLOURS["blue"], rng, frames=30), source="b.mp4")
    named = ingest_video_bytes(runtime, _clip(COLOURS["red"], rng, frames=30), source="n.mp4",
                               label="given")
    with runtime.session() as session:
        row = session.get(Video, blue.video.id)
        assert row is not None and row.label == "blue" and row.label_score is not None
        assert row.label_score > 0.8
        given = session.get(Video, named.video.id)
        assert given is not None and (given.label, given.label_score) == ("given", None)


def test_search_filters_by_the_video_label(trained) -> None:
    runtime, _ = trained
    rng = np.random.default_rng(3)
    blue = ingest_video_bytes(runtime, _clip(COLOURS["blue"], rng, frames=30), source="b.mp4")
    red = ingest_video_bytes(runtime, _clip(COLOURS["red"], rng, frames=30), source="r.mp4")
    with TestClient(create_app(runtime.settings)) as client:
        frame = client.get(f"/v1/videos/{red.video.id}").json()["frames"][0]["image_id"]
        query = client.get(f"/v1/images/{frame}/file").content
        for label, video in (("blue", blue.video.id), ("red", red.video.id)):
            answer = client.post(f"/v1/search?video_label={label}",
                                 files={"file": ("q.jpg", query, "image/jpeg")})
            assert answer.status_code == 200, answer.text
            assert {hit["video"]["id"] for hit in answer.json()["results"]} == {video}
        for video in (blue.video.id, red.video.id):  # the same words on every frame
            for listed in client.get(f"/v1/videos/{video}").json()["frames"]:
                patched = client.patch(f"/v1/images/{listed['image_id']}",
                                       json={"caption": "a plain frame"})
                assert patched.status_code == 200, patched.text
        words = client.post("/v1/search?video_label=red", json={"text": "plain frame"})
        assert words.status_code == 200, words.text
        assert {hit["video"]["id"] for hit in words.json()["results"]} == {red.video.id}
        refused = client.post("/v1/search?video_label=green",
                              files={"file": ("q.jpg", query, "image/jpeg")})
    assert refused.status_code == 422
    assert "unknown video label 'green'" in refused.json()["detail"]


def test_backup_keeps_and_storage_verify_spares_the_classifiers(trained, tmp_path: Path
                                                                 ) -> None:
    runtime, job = trained
    weights = job["training"]["weights_file"]
    report = verify_storage(runtime, fix=True)
    layout = runtime.settings.layout
    assert layout.resolve(weights).is_file()
    assert (layout.weights / "video-classifiers.json").is_file(), report.removed
    backup = backup_home(runtime.settings, tmp_path / "backup")
    assert backup.left_out == []
    copied = (tmp_path / "backup" / weights).read_bytes()
    assert hashlib.sha256(copied).hexdigest() == job["training"]["weights_sha256"]
    assert (tmp_path / "backup" / "weights" / "video-classifiers.json").is_file()


def test_a_cancelled_video_job_resumes_from_its_checkpoint(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "home", torch_threads=1)
    init_catalog(settings)
    with Runtime(settings, launcher=Held()) as runtime:
        request = VideoTrainRequest(source=str(write_clips(tmp_path / "clips", per_class=4)),
                                    task="colour", **SMALL)
        job = jobs.submit_video_train(runtime, request, wait=False)
        jobs.run_batch(runtime, job.id, 0)  # epoch 1 runs, then the job is cancelled
        jobs.cancel(runtime, job.id)
        assert jobs.get_job(runtime, job.id).state == "cancelled"
        assert (settings.layout.job(job.id) / "checkpoint.pt").is_file()
        assert registry(settings)["default"] is None
        final = jobs.describe(jobs.retry(runtime, job.id, wait=True))
        assert final["state"] == "succeeded", final["error"]
        assert [row["epoch"] for row in final["training"]["history"]] == [1, 2]
        assert registry(settings)["default"] == "colour"


@pytest.mark.slow
@pytest.mark.integration
def test_a_video_job_of_a_sigkilled_server_resumes_on_the_next(tmp_path: Path) -> None:
    """SIGKILL `lookalike serve` after the job checkpointed an epoch: the next server takes
    the job over once the lease lapses and goes on from the checkpoint, each epoch once."""
    settings = make_settings(tmp_path / "home")
    init_catalog(settings)
    clips = write_clips(tmp_path / "clips", per_class=12)
    env = {"LOOKALIKE_INGEST_ROOTS": str(tmp_path), "LOOKALIKE_JOB_LEASE_S": "3",
           "LOOKALIKE_TORCH_THREADS": "1"}
    body = {"kind": "video-train", "source": str(clips), "task": "colour",
            **{**SMALL, "epochs": EPOCHS, "size": 48, "frames": 8}}
    job_id = submit_then_kill(settings, env, body, lambda shown: len(_history(shown)) >= 1,
                              "train an epoch")
    assert (settings.layout.job(job_id) / "checkpoint.pt").is_file()
    with open_runtime(settings) as runtime:
        killed = jobs.describe(jobs.get_job(runtime, job_id))
    assert killed["state"] == "running" and 1 <= len(_history(killed)) < EPOCHS, \
        f"the kill did not land mid-job: {killed['state']}, {_history(killed)}"

    shown = finish_on_a_new_server(settings, env, job_id)
    assert shown["state"] == "succeeded", shown["error"]
    assert [row["epoch"] for row in _history(shown)] == list(range(1, EPOCHS + 1))
    done = len(_history(killed))  # kept as trained (their seconds too), not trained again
    assert _history(shown)[:done] == _history(killed), (_history(killed), _history(shown))
    assert registry(settings)["default"] == "colour"


def _history(shown: dict) -> list[dict]:
    """The epochs a job has recorded (none before its first)."""
    return (shown.get("training") or {}).get("history") or []
