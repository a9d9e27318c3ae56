"""A text-apply job gives every captioned image its topic page by page: a cancelled job
resumes only its unfinished pages, and the CLI and POST /v1/jobs launch the same job."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image as PILImage
from typer.testing import CliRunner

from lookalike.services.api.app import create_app
from lookalike.services.catalog import images as image_queries
from lookalike.services.cli.main import app
from lookalike.services.config import get_settings
from lookalike.services.jobs import runner as jobs
from lookalike.services.runtime import Runtime
from lookalike.services.setup import init_catalog
from lookalike.services.text.request import TextTrainRequest
from tests.services.conftest import ingest_into, make_settings
from tests.services.text.corpus import write_corpus
from tests.services.text.test_text_jobs import SMALL, Held

CAPTIONS = {"dog.jpg": "a dog and a cat near the horse", "bus.jpg": "the bus on the road",
            "rain.jpg": "rain and snow with thunder", "fox.jpg": "a fox and a wolf",
            "plain.jpg": ""}


def _topics(runtime: Runtime) -> dict[str, str | None]:
    with runtime.read_session() as session:
        return {Path(row.source_uri).name: row.topic
                for row in image_queries.list_images(session=session)}


def test_a_job_over_the_catalog_gives_every_caption_a_topic(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pics = tmp_path / "pics"
    pics.mkdir()
    for number, name in enumerate(CAPTIONS):
        PILImage.new("RGB", (40, 32), (40 * number, 90, 200)).save(pics / name, "JPEG")
    (tmp_path / "list.csv").write_text("path,caption\n" + "".join(
        f"pics/{name},{caption}\n" for name, caption in CAPTIONS.items()))
    settings = make_settings(tmp_path / "home", job_batch_size=2)
    init_catalog(settings)
    with Runtime(settings, launcher=Held()) as runtime:
        assert ingest_into(runtime, tmp_path / "list.csv").added == 5
        assert set(_topics(runtime).values()) == {None}  # no text model yet
        train = TextTrainRequest(name="t", source=str(write_corpus(tmp_path / "corpus",
                                                                   per_topic=20)),
                                 **{**SMALL, "epochs": 2})
        assert jobs.describe(jobs.submit_text_train(runtime, train, wait=True))["state"] == \
            "succeeded"
        job = jobs.submit_text_apply(runtime)
        assert (job.kind, job.progress_total, job.result.batch_count) == ("text-apply", 4, 2)
        jobs.run_batch(runtime, job.id, 0)  # one page, then the job is cancelled
        jobs.cancel(runtime, job.id)
        assert sum(topic is not None for topic in _topics(runtime).values()) == 2
        final = jobs.describe(jobs.retry(runtime, job.id, wait=True))
        assert (final["state"], final["counts"]["added"]) == ("succeeded", 4), final
        assert final["progress"] == {**final["progress"], "done": 4, "total": 4}
        topics = _topics(runtime)
    assert topics["plain.jpg"] is None
    assert all(topics[name] in ("animals", "vehicles", "weather")
               for name in CAPTIONS if name != "plain.jpg"), topics
    _cli_and_api_launch_it(settings.home, monkeypatch, lambda: create_app(settings))


def _cli_and_api_launch_it(home: Path, monkeypatch: pytest.MonkeyPatch,
                           make_app: Callable[[], object]) -> None:
    monkeypatch.setenv("LOOKALIKE_HOME", str(home))
    monkeypatch.delenv("LOOKALIKE_DATABASE_URL", raising=False)
    monkeypatch.delenv("LOOKALIKE_BROKER_URL", raising=False)
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["text", "apply"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert "succeeded: 4 captioned images have a topic" in result.output
    with TestClient(make_app()) as client:  # type: ignore[arg-type]
        missing = client.post("/v1/jobs", json={"kind": "text-apply", "model": "nope"})
        assert missing.status_code == 404 and "no text model 'nope'" in missing.text
        answer = client.post("/v1/jobs", json={"kind": "text-apply"})
        assert answer.status_code == 202, answer.text
        job = answer.json()
        for _ in range(100):
            if job["state"] not in ("queued", "running"):
                break
            time.sleep(0.05)
            job = client.get(f"/v1/jobs/{job['id']}").json()
        assert (job["kind"], job["state"], job["counts"]["added"]) == \
            ("text-apply", "succeeded", 4), job
