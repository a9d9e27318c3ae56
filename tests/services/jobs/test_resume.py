"""A job whose `lookalike serve` is SIGKILLed mid-way is finished by the next one, once the
dead server's lease on it lapses: every image once, none twice."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from lookalike.services.catalog.models import Embedding, Image
from lookalike.services.setup import init_catalog, open_runtime
from tests.services.conftest import make_settings
from tests.services.jobs.servers import finish_on_a_new_server, submit_then_kill

pytestmark = [pytest.mark.slow, pytest.mark.integration]

PHOTOS = 23


def test_a_job_of_a_sigkilled_server_is_finished_by_the_next(tmp_path: Path,
                                                             photo_dir: Path) -> None:
    settings = make_settings(tmp_path / "home")
    init_catalog(settings)
    env = {"LOOKALIKE_INGEST_ROOTS": str(photo_dir), "LOOKALIKE_JOB_BATCH_SIZE": "3",
           "LOOKALIKE_JOB_LEASE_S": "3", "LOOKALIKE_DECODE_WORKERS": "0",
           "LOOKALIKE_TORCH_THREADS": "1"}
    job_id = submit_then_kill(settings, env, {"kind": "ingest", "paths": [str(photo_dir)]},
                              lambda shown: shown["progress"]["done"] >= 3, "record a batch")

    with open_runtime(settings) as runtime, runtime.session() as session:
        done = session.scalar(select(func.count()).select_from(Image))
    assert 0 < done < PHOTOS, f"the kill did not land mid-job ({done} of {PHOTOS} images)"

    shown = finish_on_a_new_server(settings, env, job_id)
    assert shown["state"] == "succeeded", shown
    assert shown["progress"]["done"] == PHOTOS and shown["counts"]["failed"] == 0, shown
    assert shown["counts"]["added"] + shown["counts"]["duplicates"] == PHOTOS, shown
    with open_runtime(settings) as runtime, runtime.session() as session:
        images = session.scalar(select(func.count()).select_from(Image)
                                .where(Image.status == "embedded"))
        vectors = session.scalar(select(func.count()).select_from(Embedding))
        rows = session.scalar(select(func.count()).select_from(Image))
    assert images == vectors == rows == PHOTOS, (images, vectors, rows)
