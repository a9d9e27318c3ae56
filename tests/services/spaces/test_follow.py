"""Spaces stay whole: every filled space (the default, a former default, one a reindex job
filled) holds every image ingested after it was filled, and shows how far it lags."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from lookalike.services.api.app import create_app
from lookalike.services.errors import SpaceConflict
from lookalike.services.ingest import pipeline
from lookalike.services.ingest.pipeline import ingest_bytes
from lookalike.services.jobs import reindex as reindex_jobs
from lookalike.services.jobs import runner as jobs
from lookalike.services.runtime import Runtime
from lookalike.services.sample import fashion_mnist
from lookalike.services.search.query import search_vector
from lookalike.services.setup import init_catalog, open_runtime
from lookalike.services.spaces.create import SpaceDefinition, create_space
from lookalike.services.spaces.lifecycle import list_spaces, set_default
from tests.services.conftest import fill_space, ingest_into, make_settings

pytestmark = pytest.mark.slow

DEFAULT = "mobilenet_v2-gap"
PHOTOS = 23
FASHION = fashion_mnist(limit=8)[0]  # new images, unlike any bundled photo


def png(index: int) -> bytes:
    """Fashion-MNIST image `index` as PNG bytes."""
    buffer = io.BytesIO()
    Image.fromarray(FASHION[index]).save(buffer, format="PNG")
    return buffer.getvalue()


def write_pngs(directory: Path, indexes: range) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for index in indexes:
        (directory / f"fashion-{index}.png").write_bytes(png(index))
    return directory


def shown(runtime: Runtime) -> dict[str, tuple[int, int, bool]]:
    """Each space's (vector count, lag, filled) as `spaces list` gives them."""
    return {s.name: (s.vector_count, s.lag, s.filled) for s in list_spaces(runtime)}


def finds_itself(runtime: Runtime, space: str, image_id: int) -> bool:
    hits = search_vector(runtime, space_name=space, k=1, image_id=image_id).results
    return hits[0].image_id == image_id


@pytest.fixture()
def runtime(tmp_path: Path, photo_dir: Path, database_url: str) -> Iterator[Runtime]:
    """The bundled photos in the default space of a SQLite or a PostgreSQL catalog."""
    settings = make_settings(tmp_path / "home", database_url)
    init_catalog(settings)
    runtime = open_runtime(settings)
    assert ingest_into(runtime, photo_dir).added == PHOTOS
    yield runtime
    runtime.close()


def test_later_images_reach_every_filled_space_and_only_those(
        runtime: Runtime, tmp_path: Path) -> None:
    create_space(runtime, name="gem", definition=SpaceDefinition(pooling="gem"))
    assert fill_space(runtime, "gem")["added"] == PHOTOS
    create_space(runtime, name="idle", definition=SpaceDefinition(pooling="mac"))
    assert shown(runtime) == {DEFAULT: (PHOTOS, 0, True), "gem": (PHOTOS, 0, True),
                              "idle": (0, PHOTOS, False)}

    added = ingest_into(runtime, write_pngs(tmp_path / "more", range(3)))
    uploaded = ingest_bytes(runtime, png(3), source="upload.png")
    assert added.added == 3 and uploaded.created
    new_ids = [o.image_id for o in added.outcomes] + [uploaded.image.id]
    total = PHOTOS + 4
    assert shown(runtime) == {DEFAULT: (total, 0, True), "gem": (total, 0, True),
                              "idle": (0, total, False)}
    for space in (DEFAULT, "gem"):
        assert all(finds_itself(runtime, space, i) for i in new_ids if i is not None)

    set_default(runtime, name="gem")  # the former default keeps following
    after_switch = ingest_bytes(runtime, png(4), source="after-switch.png").image.id
    assert shown(runtime) == {DEFAULT: (total + 1, 0, True), "gem": (total + 1, 0, True),
                              "idle": (0, total + 1, False)}
    assert finds_itself(runtime, DEFAULT, after_switch)
    assert finds_itself(runtime, "gem", after_switch)
    with TestClient(create_app(runtime.settings)) as client:
        listed = {s["name"]: (s["vector_count"], s["lag"], s["filled"])
                  for s in client.get("/v1/spaces").json()}
    assert listed == shown(runtime)


def test_images_ingested_while_a_reindex_job_runs_reach_the_space_it_fills(
        photo_home: Runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(photo_home.settings, "job_batch_size", 8)
    create_space(photo_home, name="mac", definition=SpaceDefinition(pooling="mac"))
    job = reindex_jobs.create_reindex_job(photo_home, space_name="mac")
    assert job.result.batch_count > 1
    jobs.run_batch(photo_home, job.id, 0)
    added = ingest_into(photo_home, write_pngs(tmp_path / "meanwhile", range(2)))
    assert added.added == 2
    vectors, lag, filled = shown(photo_home)["mac"]
    assert (vectors + lag, filled) == (PHOTOS + 2, False)  # half-built: not followed yet

    jobs.run_batches(photo_home, job.id, range(1, job.result.batch_count))
    assert jobs.get_job(photo_home, job.id).state == "succeeded"
    assert shown(photo_home)["mac"] == (PHOTOS + 2, 0, True)
    assert all(finds_itself(photo_home, "mac", o.image_id) for o in added.outcomes
               if o.image_id is not None)


def test_a_filled_space_is_caught_up_before_it_becomes_the_default(
        photo_home: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    create_space(photo_home, name="gem", definition=SpaceDefinition(pooling="gem"))
    fill_space(photo_home, "gem")
    create_space(photo_home, name="half", definition=SpaceDefinition(pooling="mac"))
    with monkeypatch.context() as patched:  # the upload's process dies before following it
        patched.setattr(pipeline, "follow", lambda *args, **kwargs: None)
        image_id = ingest_bytes(photo_home, png(5), source="cut-off.png").image.id
    assert shown(photo_home)["gem"] == (PHOTOS, 1, True)

    with pytest.raises(SpaceConflict, match="lacks 24 embedded catalog images"):
        set_default(photo_home, name="half")
    switched = set_default(photo_home, name="gem")
    assert (switched.is_default, switched.vector_count, switched.lag) == (True, PHOTOS + 1, 0)
    assert finds_itself(photo_home, "gem", image_id)
