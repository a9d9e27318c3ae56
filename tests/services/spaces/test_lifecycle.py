"""A space's life: filled by a reindex job while searches use the default, made the default of
every API process at once, listed with its last evaluation, deleted without touching others."""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from lookalike.services.api.app import create_app
from lookalike.services.bench.search import free_port, start_server
from lookalike.services.catalog import evaluations as evaluation_queries
from lookalike.services.catalog import images as image_queries
from lookalike.services.catalog import jobs as job_queries
from lookalike.services.catalog import snapshots as snapshot_queries
from lookalike.services.catalog import spaces as space_queries
from lookalike.services.catalog.models import (
    Embedding,
    Evaluation,
    IndexChange,
    IndexSnapshot,
)
from lookalike.services.catalog.schemas import SpaceCreate
from lookalike.services.config import Settings
from lookalike.services.errors import SpaceConflict, SpaceNotFound
from lookalike.services.evaluation.run import evaluate
from lookalike.services.index.replicas import space_directory
from lookalike.services.jobs import reindex as reindex_jobs
from lookalike.services.jobs import runner as jobs
from lookalike.services.runtime import Runtime
from lookalike.services.search.query import search_vector
from lookalike.services.setup import init_catalog, open_runtime
from lookalike.services.spaces import fill
from lookalike.services.spaces.create import SpaceDefinition, create_space
from lookalike.services.spaces.lifecycle import delete_space, list_spaces
from tests.conftest import _fresh_postgres_database
from tests.services.cli.test_cli import lookalike
from tests.services.conftest import InProcessCli, fill_space, ingest_into, make_settings
from tests.services.workers.test_celery_faults import REDIS_URL, start_worker, stop

pytestmark = pytest.mark.slow

DEFAULT = "mobilenet_v2-gap"
PHOTOS = 23
JOB_TIMEOUT_S = 180


def filled(settings: Settings, photo_dir: Path) -> Runtime:
    """A runtime on a new catalog holding the bundled photos in the default space."""
    init_catalog(settings)
    runtime = open_runtime(settings)
    assert ingest_into(runtime, photo_dir).added == PHOTOS
    return runtime


def search(client: httpx.Client, query: Path, **params: object) -> dict:
    answer = client.post("/v1/search", params={"k": 10, **params},
                         files={"file": ("q.jpg", query.read_bytes())})
    assert answer.status_code == 200, answer.text
    return answer.json()


def wait_for_end(client: httpx.Client, job_id: int) -> dict:
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while time.monotonic() < deadline:
        shown = client.get(f"/v1/jobs/{job_id}").json()
        if shown["state"] not in ("queued", "running"):
            return shown
        time.sleep(0.5)
    pytest.fail(f"job {job_id} did not end within {JOB_TIMEOUT_S} s: {shown}")


def space_id(runtime: Runtime, name: str) -> int:
    with runtime.session() as session:
        space = space_queries.get_space(session=session, name=name)
        assert space is not None
        return space.id


def rows_of(runtime: Runtime, space: int) -> dict[str, int]:
    """How many rows of each per-space table belong to the space with this id."""
    counts = {}
    with runtime.session() as session:
        for table in (Embedding, IndexChange, IndexSnapshot, Evaluation):
            query = select(func.count()).select_from(table).where(table.space_id == space)
            counts[table.__tablename__] = session.scalar(query)
    return counts


def file_digests(directory: Path) -> dict[str, str]:
    return {str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.rglob("*")) if p.is_file()}


@pytest.mark.integration
def test_a_reindex_job_fills_a_space_while_the_server_answers_from_the_default_and_resumes(
        tmp_path: Path, photo_dir: Path) -> None:
    settings = make_settings(tmp_path / "home", job_batch_size=8)
    runtime = filled(settings, photo_dir)
    create_space(runtime, name="gem", definition=SpaceDefinition(pooling="gem"))
    query = sorted(photo_dir.glob("*.jpg"))[3]

    server = start_server(settings, port := free_port())
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            # The job runs here, in the test, one batch at a time; the server only searches.
            job = reindex_jobs.create_reindex_job(runtime, space_name="gem")
            assert (job.progress_total, job.result.batch_count) == (PHOTOS, 3)
            jobs.run_batch(runtime, job.id, 0)
            running = client.get(f"/v1/jobs/{job.id}").json()
            assert (running["state"], running["progress"]["done"]) == ("running", 8)
            answer = search(client, query)
            assert answer["space"] == DEFAULT and len(answer["results"]) == 10
            assert answer["results"][0]["source"] == str(query.resolve())
            partial = search(client, query, space="gem", k=50)
            assert len(partial["results"]) == 8
    finally:
        server.terminate()
        server.wait(timeout=30)

    # The process running batch 1 dies after writing 5 of its 8 vectors.
    with runtime.session() as session:
        assert job_queries.start_batch(session=session, job_id=job.id, batch=1)
        session.commit()
    page = reindex_jobs.page_ids(runtime, job, 1)
    assert len(page) == 8
    assert fill.embed_missing(runtime, space_name="gem", image_ids=page[:5]).added == 5

    server = start_server(settings, port := free_port())  # resumes the unfinished batches
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            done = wait_for_end(client, job.id)
            assert done["state"] == "succeeded", done
            assert done["counts"] == {"added": PHOTOS - 5, "duplicates": 5, "failed": 0,
                                      "regions": 0}
            assert done["progress"]["done"] == PHOTOS
            full = search(client, query, space="gem", k=50)
            assert full["space"] == "gem" and full["results"][0]["source"] == str(query.resolve())
            assert len({hit["image_id"] for hit in full["results"]}) == PHOTOS
            assert search(client, query)["space"] == DEFAULT
            listed = {s["name"]: s for s in client.get("/v1/spaces").json()}
            assert (listed["gem"]["vector_count"], listed["gem"]["is_default"]) == (PHOTOS, False)
    finally:
        server.terminate()
        server.wait(timeout=30)

    gem = space_id(runtime, "gem")
    with runtime.session() as session:
        embedded = image_queries.ids_with_status(session=session, status="embedded")
        in_gem = session.scalars(select(Embedding.image_id).where(Embedding.space_id == gem))
        assert sorted(in_gem) == embedded and len(embedded) == PHOTOS
        snapshot = snapshot_queries.latest_snapshot(session=session, space_id=gem)
    assert rows_of(runtime, gem)["index_change"] == PHOTOS  # each image added once
    assert snapshot is not None and snapshot.vector_count == PHOTOS
    assert runtime.settings.layout.resolve(snapshot.path).is_file()
    runtime.close()


@pytest.mark.integration
def test_a_reindex_job_runs_on_a_celery_worker(tmp_path: Path, photo_dir: Path) -> None:
    database = _fresh_postgres_database()
    settings = make_settings(tmp_path / "home", next(database), broker_url=REDIS_URL,
                             job_batch_size=8, job_queue=f"lookalike-test-{secrets.token_hex(4)}")
    runtime = filled(settings, photo_dir)
    create_space(runtime, name="gem", definition=SpaceDefinition(pooling="gem"))
    worker = start_worker(settings, tmp_path / "worker.log")
    try:
        job = jobs.submit_reindex(runtime, space_name="gem")
        deadline = time.monotonic() + JOB_TIMEOUT_S
        while (shown := jobs.describe(jobs.get_job(runtime, job.id)))["state"] in (
                "queued", "running"):
            assert time.monotonic() < deadline, (tmp_path / "worker.log").read_text()[-3000:]
            time.sleep(0.5)
    finally:
        stop(worker)
    assert shown["state"] == "succeeded", shown
    assert shown["counts"] == {"added": PHOTOS, "duplicates": 0, "failed": 0, "regions": 0}
    with runtime.session() as session:
        snapshot = snapshot_queries.latest_snapshot(session=session,
                                                    space_id=space_id(runtime, "gem"))
    assert snapshot is not None and snapshot.vector_count == PHOTOS
    assert search_vector(runtime, space_name="gem", k=1, image_id=9).results[0].image_id == 9
    runtime.close()
    next(database, None)


@pytest.mark.integration
def test_set_default_switches_two_servers_at_once_and_refuses_a_half_filled_space(
        tmp_path: Path, photo_dir: Path) -> None:
    database = _fresh_postgres_database()
    settings = make_settings(tmp_path / "home", next(database), job_batch_size=8)
    runtime = filled(settings, photo_dir)
    create_space(runtime, name="mac", definition=SpaceDefinition(pooling="mac"))
    with runtime.session() as session:
        first_ids = image_queries.ids_with_status(session=session, status="embedded")[:8]
    assert fill.embed_missing(runtime, space_name="mac", image_ids=first_ids).added == 8
    query = sorted(photo_dir.glob("*.jpg"))[7]
    ports = [free_port(), free_port()]
    servers = [start_server(settings, port) for port in ports]
    clients = [httpx.Client(base_url=f"http://127.0.0.1:{p}", timeout=60) for p in ports]
    first, second = clients
    try:
        refused = first.post("/v1/spaces/mac/default")
        assert refused.status_code == 409 and refused.json()["error"] == "space_conflict"
        assert "holds 8 vectors" in refused.json()["detail"]
        assert f"holds {PHOTOS}" in refused.json()["detail"]
        assert search(second, query)["space"] == DEFAULT

        finished = jobs.describe(jobs.submit_reindex(runtime, space_name="mac", wait=True))
        assert finished["counts"] == {"added": PHOTOS - 8, "duplicates": 8, "failed": 0,
                                      "regions": 0}
        switched = first.post("/v1/spaces/mac/default")
        assert switched.status_code == 200, switched.text
        assert (switched.json()["is_default"], switched.json()["vector_count"]) == (True, PHOTOS)
        for client in clients:
            answer = search(client, query)
            assert answer["space"] == "mac"
            assert answer["results"][0]["source"] == str(query.resolve())
        listed = {s["name"]: s["is_default"] for s in second.get("/v1/spaces").json()}
        assert listed == {DEFAULT: False, "mac": True}

        create_space(runtime, name="empty", definition=SpaceDefinition(pooling="gem"))
        assert first.post("/v1/spaces/empty/default").status_code == 409
        forced = second.post("/v1/spaces/empty/default", params={"force": "true"})
        assert forced.status_code == 200 and forced.json()["vector_count"] == 0
        assert [s["name"] for s in first.get("/v1/spaces").json() if s["is_default"]] == ["empty"]
        assert first.post(f"/v1/spaces/{DEFAULT}/default").status_code == 200
        assert search(second, query)["space"] == DEFAULT
        assert first.post("/v1/spaces/nope/default").status_code == 404
    finally:
        for client, server in zip(clients, servers, strict=True):
            client.close()
            server.terminate()
            server.wait(timeout=30)
        runtime.close()
        next(database, None)


def test_deleting_a_space_removes_its_rows_and_files_and_nothing_of_another(
        tmp_path: Path, photo_dir: Path, database_url: str) -> None:
    runtime = filled(make_settings(tmp_path / "home", database_url), photo_dir)
    first = create_space(runtime, name="first", definition=SpaceDefinition(whiten_dim=8))
    twin = SpaceCreate(**{name: getattr(first, name) for name in (
        "backbone", "weights_sha256", "layer", "pooling", "whitening", "dim", "options")},
        name="twin")  # the same whitening file as `first`
    with runtime.session() as session:
        space_queries.create_space(session=session, data=twin)
        session.commit()
    for name in ("first", "twin"):
        assert fill_space(runtime, name)["added"] == PHOTOS  # the job's last page snapshots
    evaluate(runtime, space_name="first", benchmark="fashion-mnist", limit=5)
    whitening = runtime.settings.layout.whitening / f"{first.options.whitening_sha256}.npz"
    with runtime.session() as session:
        spaces = {s.name: s for s in space_queries.list_spaces(session=session)}
    first_dir = space_directory(runtime.settings.layout.indexes, spaces["first"])
    twin_dir = space_directory(runtime.settings.layout.indexes, spaces["twin"])
    twin_files = file_digests(twin_dir)
    assert twin_files and first_dir.is_dir()
    assert rows_of(runtime, first.id) == {"embedding": PHOTOS, "index_change": PHOTOS,
                                          "index_snapshot": 1, "evaluation": 1}

    with pytest.raises(SpaceConflict, match="set-default"):
        delete_space(runtime, name=DEFAULT)
    deleted = delete_space(runtime, name="first")
    assert (deleted.vectors, deleted.whitening_file) == (PHOTOS, None)
    assert deleted.index_files >= 1 and not first_dir.exists()
    assert rows_of(runtime, first.id) == dict.fromkeys(rows_of(runtime, first.id), 0)
    assert whitening.is_file() and file_digests(twin_dir) == twin_files
    assert "first" not in {r.space_name for r in runtime.loaded_replicas()}
    with pytest.raises(SpaceNotFound, match="first"):
        search_vector(runtime, space_name="first", k=1, image_id=5)
    assert search_vector(runtime, space_name="twin", k=1, image_id=5).results[0].image_id == 5
    assert {s.name: s.vector_count for s in list_spaces(runtime)} == {DEFAULT: PHOTOS,
                                                                       "twin": PHOTOS}

    assert delete_space(runtime, name="twin").whitening_file == str(whitening)
    assert not whitening.exists() and not twin_dir.exists()
    runtime.close()


def test_a_space_created_after_a_deletion_is_not_served_from_the_old_replica(
        photo_home: Runtime) -> None:
    elsewhere = open_runtime(photo_home.settings)  # another API process on the same catalog
    old = create_space(photo_home, name="old", definition=SpaceDefinition(pooling="mac"))
    fill_space(photo_home, "old")
    with elsewhere.session() as session:
        assert elsewhere.replica(old, session=session).ntotal == PHOTOS
    delete_space(photo_home, name="old")
    new = create_space(photo_home, name="new", definition=SpaceDefinition(pooling="gem"))
    assert new.id != old.id  # AUTOINCREMENT: SQLite never hands out a deleted id again
    with elsewhere.session() as session:
        assert elsewhere.replica(new, session=session).ntotal == 0
    elsewhere.close()


def test_spaces_show_their_last_evaluation_and_the_routes_refuse_what_they_must(
        photo_home: Runtime) -> None:
    evaluate(photo_home, space_name=None, benchmark="fashion-mnist", limit=10)
    newest = evaluate(photo_home, space_name=None, benchmark="fashion-mnist", limit=5)
    (default,) = list_spaces(photo_home)
    shown = default.last_evaluation
    assert shown is not None and (shown.benchmark, shown.queries, shown.gallery) == (
        "fashion-mnist", 5, 50)
    assert shown.map == pytest.approx(newest.map)
    assert shown.precision_at_1 == pytest.approx(newest.precision[1], abs=1e-4)
    assert shown.precision_at_10 == pytest.approx(newest.precision[10], abs=1e-4)
    with photo_home.session() as session:
        assert len(session.scalars(select(Evaluation)).all()) == 2
        assert evaluation_queries.latest_evaluations(session=session, space_ids=[]) == {}

    with TestClient(create_app(photo_home.settings)) as client:
        listed = client.get("/v1/spaces").json()[0]
        assert listed["last_evaluation"]["map"] == pytest.approx(newest.map)
        assert listed["last_evaluation"]["queries"] == 5
        refused = client.delete(f"/v1/spaces/{DEFAULT}")
        assert refused.status_code == 409 and "default" in refused.json()["detail"]
        assert client.delete("/v1/spaces/nope").status_code == 404
        assert client.post("/v1/jobs", json={"kind": "reindex", "space": "nope"}
                           ).status_code == 404
        assert client.post("/v1/jobs", json={"kind": "reindex"}).status_code == 422

        create_space(photo_home, name="gem", definition=SpaceDefinition(pooling="gem"))
        submitted = client.post("/v1/jobs", json={"kind": "reindex", "space": "gem"})
        assert submitted.status_code == 202, submitted.text
        assert submitted.json()["kind"] == "reindex"
        while (job := client.get(f"/v1/jobs/{submitted.json()['id']}").json())["state"] in (
                "queued", "running"):
            time.sleep(0.2)
        assert job["state"] == "succeeded" and job["counts"]["added"] == PHOTOS
        busy = reindex_jobs.create_reindex_job(photo_home, space_name="gem")
        refused = client.delete("/v1/spaces/gem")
        assert refused.status_code == 409 and f"job {busy.id}" in refused.json()["detail"]
        jobs.cancel(photo_home, busy.id)
        removed = client.delete("/v1/spaces/gem")
        assert removed.status_code == 200 and removed.json()["vectors"] == PHOTOS
        assert [s["name"] for s in client.get("/v1/spaces").json()] == [DEFAULT]



@pytest.mark.integration
def test_the_spaces_commands_as_a_user_runs_them(tmp_path: Path, photo_dir: Path,
                                                 lookalike_in_process: InProcessCli) -> None:
    """The walk runs in this process through the command's entry point, but for one refusal
    run as a real `lookalike` subprocess (exit status 1, the reason on stderr)."""
    home = tmp_path / "home"
    cli = lookalike_in_process
    cli(home, "init")
    cli(home, "ingest", str(photo_dir))
    cli(home, "spaces", "create", "gem", "--pooling", "gem")
    detached = cli(home, "spaces", "reindex", "gem", "--no-wait", check=False)
    assert detached.returncode == 1 and "LOOKALIKE_BROKER_URL" in detached.stderr
    early = lookalike(home, "spaces", "set-default", "gem", check=False)
    assert early.returncode == 1 and "holds 0 vectors" in early.stderr

    filled_out = cli(home, "spaces", "reindex", "gem").stdout
    assert f"embedded {PHOTOS}, already there 0, failed 0" in filled_out
    assert "succeeded" in filled_out
    switched = cli(home, "spaces", "set-default", "gem").stdout
    assert f"default space is now gem: {PHOTOS} vectors" in switched
    cli(home, "evaluate", "--benchmark", "fashion-mnist", "--limit", "5")
    cli(home, "spaces", "list")
    listed = {s["name"]: s for s in json.loads(cli(home, "spaces", "list", "--json").stdout)}
    assert {name: (s["is_default"], s["vector_count"], s["lag"])
            for name, s in listed.items()} == {DEFAULT: (False, PHOTOS, 0),
                                               "gem": (True, PHOTOS, 0)}
    assert listed["gem"]["last_evaluation"]["benchmark"] == "fashion-mnist"
    assert listed[DEFAULT]["last_evaluation"] is None

    refused = cli(home, "spaces", "delete", "gem", "--yes", check=False)
    assert refused.returncode == 1 and "is the default" in refused.stderr
    deleted = cli(home, "spaces", "delete", DEFAULT, "--yes").stdout
    assert f"deleted space {DEFAULT}: {PHOTOS} vectors" in deleted
    query = sorted(photo_dir.glob("*.jpg"))[0]
    answer = json.loads(cli(home, "search", str(query), "--json").stdout)
    assert answer["space"] == "gem" and answer["results"][0]["source"] == str(query.resolve())
