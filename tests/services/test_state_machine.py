"""Random sequences of everything that changes the catalog, its files and its replicas, on
SQLite and PostgreSQL, with the consistency invariants checked after every step.

The rules call the service functions that the API routes, the CLI and the workers call, in
this process: uploads (new bytes, the same bytes again, the bytes of a deleted image),
deletes, ingest jobs, interrupted jobs resumed by a restarted process, spaces created,
filled, made the default and deleted, snapshots, and replicas restarted from their newest
snapshot. After each step: every embedded image is in every filled space's replica exactly
once, with the catalog's vector; no deleted image is in any space or on disk; every file a
row names holds the bytes of its sha256 and no file lacks a row; the default space holds
the whole catalog; `index verify` and `storage verify` find nothing.
"""

from __future__ import annotations

import io
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psycopg
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from PIL import Image as PILImage
from psycopg import sql
from sqlalchemy import select

from lookalike.retrieval.embedding.embedder import Embedder
from lookalike.retrieval.images import sha256_hex
from lookalike.services.catalog import embeddings as embedding_queries
from lookalike.services.catalog import jobs as job_queries
from lookalike.services.catalog import spaces as space_queries
from lookalike.services.catalog.documents import IngestParams
from lookalike.services.catalog.migrate import upgrade
from lookalike.services.catalog.models import Image, Space
from lookalike.services.config import Settings
from lookalike.services.errors import SpaceConflict
from lookalike.services.index.replicas import vectors_from_bytes
from lookalike.services.index.snapshots import snapshot_all
from lookalike.services.index.verify import verify_all
from lookalike.services.ingest.images import delete_image
from lookalike.services.ingest.pipeline import ingest_bytes
from lookalike.services.jobs import reindex as reindex_jobs
from lookalike.services.jobs import runner as jobs
from lookalike.services.jobs.launch import ThreadLauncher
from lookalike.services.runtime import Runtime
from lookalike.services.setup import configure_threads
from lookalike.services.spaces.create import SpaceDefinition, create_space
from lookalike.services.spaces.lifecycle import delete_space, set_default
from lookalike.services.storage.verify import verify_storage
from tests.services.conftest import make_settings

pytestmark = pytest.mark.slow

JOB_DEADLINE_S = 60
SIDE = 32
POOLINGS = ("gap", "mac", "gem")

# A space's model depends only on its definition, so examples share them instead of loading
# MobileNetV2 again for every new catalog (the key holds everything `build_embedder` reads).
_MODELS: dict[tuple[object, ...], Embedder] = {}


class SharedModels(Runtime):
    """A runtime whose spaces' models are shared with earlier runtimes of the same test."""

    def embedder(self, space: Space) -> Embedder:
        key = (space.backbone, space.weights_sha256, space.pooling, space.whitening,
               space.options.model_dump_json())
        if key not in _MODELS:
            _MODELS[key] = super().embedder(space)
        return _MODELS[key]


def picture(seed: int) -> bytes:
    """A 32x32 PNG unlike any other seed's: random colour blocks."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 256, size=(4, 4, 3), dtype=np.uint8)
    pixels = np.kron(blocks, np.ones((SIDE // 4, SIDE // 4, 1), dtype=np.uint8))
    buffer = io.BytesIO()
    PILImage.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


class Catalogs:
    """A fresh migrated catalog for each example, far cheaper than migrating: a copy of one
    migrated SQLite file, or on PostgreSQL one migrated database emptied (TRUNCATE ...
    RESTART IDENTITY, so ids start again at 1, as in a new database)."""

    def __init__(self, template_url: str, root: Path) -> None:
        upgrade(template_url)
        self.template_url = template_url
        self.root = root
        self.made = 0

    def new(self) -> tuple[str | None, Path]:
        """(database URL, home folder) of an empty catalog; None: SQLite under the home."""
        self.made += 1
        home = self.root / f"example-{self.made}"
        if self.template_url.startswith("sqlite"):
            target = Settings(home=home).layout.catalog_db
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(self.template_url.removeprefix("sqlite:///"), target)
            return None, home
        with psycopg.connect(self.template_url, autocommit=True) as connection:
            tables = [row[0] for row in connection.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                "AND tablename <> 'alembic_version'")]
            connection.execute(sql.SQL("TRUNCATE {} RESTART IDENTITY CASCADE").format(
                sql.SQL(", ").join(map(sql.Identifier, tables))))
        return self.template_url, home


def open_shared(settings: Settings) -> Runtime:
    """A runtime as `open_runtime` builds it for an embedded server (jobs in threads)."""
    configure_threads(settings)
    return SharedModels(settings, launcher=ThreadLauncher())


def wait_for_job_threads(job_ids: list[int]) -> None:
    """Join the runner threads of these jobs (ThreadLauncher names them), which go on
    after a job's last record: catching the space up and writing its snapshot."""
    names = {f"job-{job_id}" for job_id in job_ids}
    deadline = time.monotonic() + JOB_DEADLINE_S
    for thread in [t for t in threading.enumerate() if t.name in names]:
        thread.join(max(0.0, deadline - time.monotonic()))
        assert not thread.is_alive(), f"{thread.name} did not end within {JOB_DEADLINE_S} s"


class CatalogMachine(RuleBasedStateMachine):
    """The model: which picture seeds are live, deleted or waiting in an interrupted job."""

    catalogs: Catalogs

    def __init__(self) -> None:
        super().__init__()
        self.url, self.home = self.catalogs.new()
        self.settings = make_settings(self.home, self.url, decode_workers=0, torch_threads=1,
                                      frozen_graph=False, job_batch_size=2, job_lease_s=5.0)
        self.runtime = open_shared(self.settings)
        self.sources = self.home.parent / f"{self.home.name}-sources"
        self.sources.mkdir(parents=True)
        self.next_seed = 0
        self.next_space = 0
        self.ids: dict[int, int] = {}
        self.live: set[int] = set()
        self.deleted: set[int] = set()
        self.spaces: set[str] = set()
        self.waiting: dict[int, list[int]] = {}  # interrupted job id -> seeds it still holds

    def teardown(self) -> None:
        wait_for_job_threads(list(self.waiting))
        self.runtime.close()
        shutil.rmtree(self.home.parent / f"{self.home.name}-sources", ignore_errors=True)
        shutil.rmtree(self.home, ignore_errors=True)

    # --- helpers ---

    def _seeds(self, count: int) -> list[int]:
        seeds = list(range(self.next_seed, self.next_seed + count))
        self.next_seed += count
        return seeds

    def _source_files(self, seeds: list[int]) -> list[Path]:
        paths = []
        for seed in seeds:
            path = self.sources / f"{seed}.png"
            path.write_bytes(picture(seed))
            paths.append(path)
        return paths

    def _now_live(self, seeds: list[int]) -> None:
        self.live.update(seeds)
        self.deleted.difference_update(seeds)

    def _space_rows(self) -> list[Space]:
        with self.runtime.read_session() as session:
            rows = space_queries.list_spaces(session=session)
            for row in rows:
                session.expunge(row)
        return rows

    def _restart(self) -> None:
        """The process ends and a new one starts: replicas load from snapshot + catch-up."""
        self.runtime.close()
        self.runtime = open_shared(self.settings)

    # --- rules ---

    @initialize()
    def first_upload(self) -> None:
        self.upload_new()

    @rule()
    def upload_new(self) -> None:
        seed = self._seeds(1)[0]
        result = ingest_bytes(self.runtime, picture(seed), source=f"upload-{seed}.png")
        assert result.created and result.image.status == "embedded"
        self.ids[seed] = result.image.id
        self._now_live([seed])

    @precondition(lambda self: self.live)
    @rule(data=st.data())
    def upload_duplicate(self, data: st.DataObject) -> None:
        seed = data.draw(st.sampled_from(sorted(self.live)), label="seed")
        result = ingest_bytes(self.runtime, picture(seed), source=f"again-{seed}.png")
        assert (result.created, result.image.id) == (False, self.ids[seed])

    @precondition(lambda self: self.live)
    @rule(data=st.data())
    def delete(self, data: st.DataObject) -> None:
        seed = data.draw(st.sampled_from(sorted(self.live)), label="seed")
        delete_image(self.runtime, self.ids[seed])
        self.live.discard(seed)
        self.deleted.add(seed)

    @precondition(lambda self: self.deleted)
    @rule(data=st.data())
    def upload_deleted_bytes(self, data: st.DataObject) -> None:
        seed = data.draw(st.sampled_from(sorted(self.deleted)), label="seed")
        result = ingest_bytes(self.runtime, picture(seed), source=f"back-{seed}.png")
        assert result.created and result.image.status == "embedded"
        self.ids[seed] = result.image.id
        self._now_live([seed])

    @rule(new=st.integers(1, 3), with_duplicate=st.booleans())
    def ingest_job(self, new: int, with_duplicate: bool) -> None:
        seeds = self._seeds(new)
        again = sorted(self.live)[:1] if with_duplicate else []
        paths = self._source_files(seeds + again)
        job = jobs.submit_ingest(self.runtime, paths=[str(p) for p in paths], wait=True)
        shown = jobs.describe(jobs.get_job(self.runtime, job.id))
        assert shown["state"] == "succeeded", shown
        assert shown["counts"] == {"added": new, "duplicates": len(again), "failed": 0,
                                   "regions": 0}, shown
        self._remember(seeds)

    @rule(pooling=st.sampled_from(POOLINGS), fill=st.booleans())
    def new_space(self, pooling: str, fill: bool) -> None:
        """A space, left empty or filled at once by a reindex job."""
        self.next_space += 1
        name = f"s{self.next_space}-{pooling}"
        create_space(self.runtime, name=name, definition=SpaceDefinition(pooling=pooling))
        self.spaces.add(name)
        if fill:
            self._reindex(name)

    @precondition(lambda self: self.spaces)
    @rule(data=st.data())
    def reindex(self, data: st.DataObject) -> None:
        self._reindex(data.draw(st.sampled_from(sorted(self.spaces)), label="space"))

    def _reindex(self, name: str) -> None:
        shown = jobs.describe(jobs.submit_reindex(self.runtime, space_name=name, wait=True))
        assert shown["state"] == "succeeded", shown

    @precondition(lambda self: self.spaces)
    @rule(data=st.data())
    def make_default(self, data: st.DataObject) -> None:
        names = sorted(self.spaces | {s.name for s in self._space_rows()})
        name = data.draw(st.sampled_from(names), label="space")
        space = next(s for s in self._space_rows() if s.name == name)
        try:
            set_default(self.runtime, name=name)
        except SpaceConflict:
            with self.runtime.read_session() as session:
                lag = embedding_queries.count_missing(session=session, space_id=space.id)
            assert space.filled_at is None and lag > 0, (name, lag)

    @precondition(lambda self: self.spaces)
    @rule(data=st.data())
    def drop_space(self, data: st.DataObject) -> None:
        rows = {s.name: s for s in self._space_rows()}  # a former default too
        name = data.draw(st.sampled_from(sorted(rows)), label="space")
        filling = self._filling(name)
        if rows[name].is_default or filling:
            with pytest.raises(SpaceConflict):
                delete_space(self.runtime, name=name)
            return
        delete_space(self.runtime, name=name)
        self.spaces.discard(name)

    def _filling(self, name: str) -> bool:
        """Whether an unfinished reindex job fills the space (its delete is refused)."""
        with self.runtime.read_session() as session:
            unfinished = [job for state in ("queued", "running")
                          for job in job_queries.list_jobs(session=session, state=state)]
        return any(job.kind == "reindex" and job.params.space == name for job in unfinished)

    @rule()
    def snapshot(self) -> None:
        snapshot_all(self.runtime)

    @rule()
    def restart(self) -> None:
        self._restart()

    @rule(reindexing=st.booleans(), data=st.data())
    def interrupted_job(self, reindexing: bool, data: st.DataObject) -> None:
        """A job whose process died in its second batch: the first recorded, the second
        started (its attempt counted) but never recorded."""
        unfilled = sorted(s.name for s in self._space_rows() if s.filled_at is None)
        reindexing = reindexing and bool(unfilled)
        if reindexing:
            name = data.draw(st.sampled_from(unfilled), label="space")
            job = reindex_jobs.create_reindex_job(self.runtime, space_name=name)
            held: list[int] = []
        else:
            seeds = self._seeds(3)
            items: list[tuple[str, str | None]] = [
                (str(p), None) for p in self._source_files(seeds)]
            with self.runtime.session() as session:
                job = job_queries.create_job(
                    session=session, kind="ingest", total=3, batches=2,
                    params=IngestParams(source="paths", items=items, batch_size=2))
                session.commit()
            held = seeds[2:]
        if job.result.batch_count < 2:  # too short to interrupt: it just runs
            jobs.run_job(self.runtime, job.id)
            return
        jobs.run_batch(self.runtime, job.id, 0)
        with self.runtime.session() as session:
            assert job_queries.start_batch(session=session, job_id=job.id, batch=1)
            session.commit()
        if not reindexing:
            self._remember(seeds[:2])
        self.waiting[job.id] = held
        self._restart()

    def _remember(self, seeds: list[int]) -> None:
        shas = {sha256_hex(picture(seed)): seed for seed in seeds}
        with self.runtime.read_session() as session:
            for row in session.scalars(select(Image).where(Image.sha256.in_(list(shas)))):
                self.ids[shas[row.sha256]] = row.id
        self._now_live(seeds)

    @precondition(lambda self: self.waiting)
    @rule()
    def resume(self) -> None:
        """A restarted server finishes every interrupted job (their leases are free)."""
        self._restart()
        resumed = jobs.resume_interrupted(self.runtime)
        assert sorted(resumed) == sorted(self.waiting), (resumed, self.waiting)
        wait_for_job_threads(resumed)
        for job_id in resumed:
            shown = jobs.describe(jobs.get_job(self.runtime, job_id))
            assert shown["state"] == "succeeded", shown
            self._remember(self.waiting.pop(job_id))

    # --- invariants ---

    @invariant()
    def catalog_replicas_and_files_agree(self) -> None:
        check_consistency(self)


def check_consistency(machine: CatalogMachine) -> None:
    runtime = machine.runtime
    with runtime.read_session() as session:
        images = list(session.scalars(select(Image)))
        spaces = space_queries.list_spaces(session=session)
        embedded = {i.id for i in images if i.status == "embedded"}
        shas = {i.sha256 for i in images if i.status == "embedded"}
        assert {i.status for i in images} <= {"embedded", "deleted"}, [
            (i.id, i.status, i.error) for i in images if i.status not in ("embedded", "deleted")]
        assert shas == {sha256_hex(picture(s)) for s in machine.live}
        assert embedded == {machine.ids[s] for s in machine.live}
        assert {machine.ids[s] for s in machine.deleted}.isdisjoint(embedded)
        assert len([s for s in spaces if s.is_default]) == 1
        for space in spaces:
            _check_space(runtime, session, space, embedded)
    for seed in machine.deleted:
        row = next(i for i in images if i.id == machine.ids[seed])
        assert row.status == "deleted"
        assert not (row.stored_path and Path(row.stored_path).exists()), row.stored_path
    storage = verify_storage(runtime)
    assert storage.findings == [], [str(f) for f in storage.findings]
    assert storage.images == len(embedded)
    assert [r.advice() for r in verify_all(runtime) if not r.ok] == []


def _check_space(runtime: Runtime, session, space: Space, embedded: set[int]) -> None:
    """The space's catalog vectors and its replica: every embedded image exactly once in a
    filled space (the default always is), never a deleted one, the catalog's vector."""
    stored: dict[int, np.ndarray] = {}
    for ids, blobs, _ in embedding_queries.iter_vectors(session=session, space_id=space.id):
        stored.update(zip(ids, vectors_from_bytes(blobs, space.dim), strict=True))
    if space.is_default:
        assert space.filled_at is not None, f"default space {space.name} is not filled"
    if space.filled_at is not None:
        assert set(stored) == embedded, (space.name, sorted(embedded - set(stored)),
                                         sorted(set(stored) - embedded))
    else:
        assert set(stored) <= embedded, (space.name, sorted(set(stored) - embedded))
    replica = runtime.replica(space, session=session)
    ids = replica.ids()
    assert replica.ntotal == len(ids) == len(set(ids.tolist()))
    assert set(ids.tolist()) == set(stored), (space.name, ids, sorted(stored))
    if not stored:
        return
    found, vectors = replica.vectors(ids)
    expected = np.stack([stored[int(i)] for i in found])
    np.testing.assert_allclose(vectors, expected, atol=1e-5)
    hits = replica.search(expected, k=len(ids))
    for image_id, row in zip(found, hits.ids, strict=True):
        assert int((row == image_id).sum()) == 1, f"{space.name}: {image_id} held twice"


@pytest.fixture()
def catalogs(database_url: str, tmp_path: Path) -> Iterator[Catalogs]:
    yield Catalogs(database_url, tmp_path / "examples")


def test_every_sequence_of_operations_keeps_catalog_replicas_and_files_consistent(
        catalogs: Catalogs) -> None:
    machine = type("Machine", (CatalogMachine,), {"catalogs": catalogs})
    run_state_machine_as_test(machine, settings=settings(
        max_examples=10, stateful_step_count=12, deadline=None, database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]))
