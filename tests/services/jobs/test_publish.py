"""A fine-tuning job publishes its space once: the last epoch run again (after a crash
between creating the space and recording it, or a retry) records the space it made instead
of failing for ever, and a space of that name made otherwise is a clear conflict."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from lookalike.services.catalog import jobs as job_queries
from lookalike.services.catalog import spaces as space_queries
from lookalike.services.catalog.documents import FinetuneParams, SpaceOptions
from lookalike.services.catalog.schemas import SpaceCreate
from lookalike.services.config import Settings
from lookalike.services.errors import SpaceExists
from lookalike.services.jobs import finetune
from lookalike.services.jobs import runner as jobs
from lookalike.services.runtime import Runtime
from lookalike.services.setup import init_catalog, open_runtime
from lookalike.services.training.request import FinetuneRequest
from lookalike.services.training.trainees import Trainee
from tests.services.conftest import make_settings

REQUEST = FinetuneRequest(space="tuned", epochs=1)


class WorkerKilled(Exception):
    """Stands in for the end of a worker process."""


@pytest.fixture()
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    settings = make_settings(tmp_path / "home")
    init_catalog(settings)
    runtime = open_runtime(settings)
    yield runtime
    runtime.close()


def finetune_job(runtime: Runtime, request: FinetuneRequest = REQUEST) -> int:
    """A fine-tuning job row, as submit_finetune records it (nothing runs)."""
    params = FinetuneParams(request=request.model_dump(mode="json"), batch_sizes=[1])
    with runtime.session() as session:
        job = job_queries.create_job(session=session, kind="finetune", params=params, total=1,
                                     batches=1)
        session.commit()
        return job.id


def trained(written: list[Path]) -> Trainee:
    """A trainee whose publish writes a weight file (listed in `written`) and defines an
    8-dimensional space from it, as the real ones do, without any training."""

    def publish(settings: Settings, name: str) -> SpaceCreate:
        data = f"weights {len(written)}".encode()
        sha = hashlib.sha256(data).hexdigest()
        path = settings.layout.weights / f"tuned-{sha[:16]}.pt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        written.append(path)
        return SpaceCreate(name=name, backbone="lenet5", weights_sha256=sha, layer="features",
                           pooling="gap", dim=8, options=SpaceOptions(weights_file=str(path)))

    return Trainee(model=torch.nn.Identity(), train_set=torch.utils.data.TensorDataset(),
                   validate=lambda _: 0.0, bf16=False, publish=publish)


def test_the_last_epoch_run_again_after_a_crash_records_the_space_it_made(
        runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    job_id, written = finetune_job(runtime), []

    def killed(*_: object) -> None:
        raise WorkerKilled("the worker died between creating the space and recording it")

    with monkeypatch.context() as crash:
        crash.setattr(finetune, "patch_result", killed)
        with pytest.raises(WorkerKilled):
            finetune._publish(runtime, job_id, REQUEST, trained(written))
    assert jobs.get_job(runtime, job_id).result.space is None

    finetune._publish(runtime, job_id, REQUEST, trained(written))
    result = jobs.get_job(runtime, job_id).result
    assert len(written) == 1, "the weights were published twice"
    assert (result.space, result.weights_file) == ("tuned", str(written[0]))
    assert result.weights_sha256 == hashlib.sha256(written[0].read_bytes()).hexdigest()
    with runtime.session() as session:
        space = space_queries.get_space(session=session, name="tuned")
    assert space is not None and space.options.trained_by_job == job_id


@pytest.mark.parametrize("maker", ["by hand", "another job"])
def test_a_space_of_that_name_made_otherwise_is_a_clear_conflict(runtime: Runtime,
                                                                  maker: str) -> None:
    other = finetune_job(runtime) if maker == "another job" else None
    with runtime.session() as session:
        space_queries.create_space(session=session, data=SpaceCreate(
            name="tuned", backbone="lenet5", layer="features", pooling="gap", dim=8,
            options=SpaceOptions(trained_by_job=other)))
        session.commit()
    job_id, written = finetune_job(runtime), []
    expected = f"fine-tuning job {other}" if other else "another command"
    with pytest.raises(SpaceExists, match=rf"created by {expected}, not by fine-tuning job "
                                          rf"{job_id}.*lookalike jobs retry {job_id}"):
        finetune._publish(runtime, job_id, REQUEST, trained(written))
    assert written == [], "weights were written for a space that cannot be created"
    assert jobs.get_job(runtime, job_id).result.space is None
