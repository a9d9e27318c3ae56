"""Service-level fixtures: real catalogs under tmp dirs, filled with real photos."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lookalike.services.bench.synthetic import add_synthetic_images
from lookalike.services.catalog import spaces as space_queries
from lookalike.services.catalog.models import Space
from lookalike.services.catalog.schemas import SpaceCreate
from lookalike.services.cli.main import run
from lookalike.services.config import Settings, get_settings
from lookalike.services.ingest.pipeline import IngestSummary, ingest_items
from lookalike.services.ingest.sources import collect_items
from lookalike.services.jobs import runner as jobs
from lookalike.services.runtime import Runtime
from lookalike.services.sample import build_sample, bundled_photos
from lookalike.services.setup import init_catalog, open_runtime


def make_settings(home: Path, database_url: str | None = None, **overrides: object) -> Settings:
    """Settings for a test catalog; two decode workers as on the 2-core machine; FastAPI's
    test client's host name served beside the loopback ones."""
    hosts = {"allowed_hosts": ["localhost", "127.0.0.1", "[::1]", "testserver"]}
    return Settings(home=home, database_url=database_url,
                    **{"decode_workers": 2, **hosts, **overrides})


def write_photos(directory: Path) -> list[Path]:
    """The bundled photos as JPEG files, one per photo."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for photo in bundled_photos():
        path = directory / f"{photo.name}.jpg"
        photo.image.save(path, quality=92)
        paths.append(path)
    return paths


def ingest_into(runtime: Runtime, *paths: Path, label_from_dir: bool = False) -> IngestSummary:
    return ingest_items(runtime, collect_items(list(paths), label_from_dir=label_from_dir))


@pytest.fixture(scope="session")
def photo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("photos")
    write_photos(directory)
    return directory


@pytest.fixture(scope="session")
def sample_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, Path]]:
    """A SQLite catalog holding the bundled photos and 3,000 Fashion-MNIST images (labelled)."""
    root = tmp_path_factory.mktemp("sample")
    build_sample(root / "data", fashion_per_class=300)
    settings = make_settings(root / "home")
    init_catalog(settings)
    runtime = open_runtime(settings)
    summary = ingest_into(runtime, root / "data", label_from_dir=True)
    runtime.close()
    assert summary.failed == 0, summary.outcomes
    yield settings, root / "data"


@pytest.fixture()
def photo_home(tmp_path: Path, photo_dir: Path) -> Iterator[Runtime]:
    """A fresh SQLite catalog holding only the bundled photos."""
    settings = make_settings(tmp_path / "home")
    init_catalog(settings)
    runtime = open_runtime(settings)
    ingest_into(runtime, photo_dir)
    yield runtime
    runtime.close()


def fill_space(runtime: Runtime, name: str) -> dict[str, int]:
    """Embed the catalog into space `name` by a reindex job run here: the job's counts."""
    return jobs.describe(jobs.submit_reindex(runtime, space_name=name, wait=True))["counts"]


def synthetic_space(runtime: Runtime, name: str, *, dim: int = 16, count: int = 40,
                    seed: int = 0) -> Space:
    """A space holding `count` random unit vectors of new image rows, written through the
    catalog (no model: searches by image id never embed anything)."""
    with runtime.session() as session:
        space = space_queries.create_space(session=session, data=SpaceCreate(
            name=name, backbone="synthetic", layer="none", pooling="gap", dim=dim))
        session.commit()
        session.expunge(space)
    for _ in add_synthetic_images(runtime, space_id=space.id, dim=dim, count=count, seed=seed):
        pass
    return space


InProcessCli = Callable[..., subprocess.CompletedProcess]


@pytest.fixture
def lookalike_in_process(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
                         ) -> Iterator[InProcessCli]:
    """`lookalike ARGS` with LOOKALIKE_HOME set, through the command's own entry point (run())
    in this process: its exit status, stdout and stderr as a subprocess would give them, without
    a fresh interpreter importing torch for every command of a long walk. The process boundary
    itself is tested through real subprocesses (tests/services/cli/test_cli.py `lookalike`)."""

    def invoke(home: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        monkeypatch.setenv("LOOKALIKE_HOME", str(home))
        monkeypatch.delenv("LOOKALIKE_DATABASE_URL", raising=False)
        monkeypatch.setattr(sys, "argv", ["lookalike", *args])
        get_settings.cache_clear()
        capsys.readouterr()
        code: int | str | None = 0
        root = logging.getLogger()
        handlers, level = root.handlers[:], root.level
        root.handlers.clear()  # as in a fresh process: an app built earlier logs to stdout
        try:
            run()
        except SystemExit as exit_:
            code = exit_.code
        finally:
            root.handlers[:] = handlers
            root.setLevel(level)
            get_settings.cache_clear()
        out, err = capsys.readouterr()
        if isinstance(code, str):  # sys.exit("message"): Python prints it and exits 1
            code, err = 1, f"{err}{code}\n"
        if check and code:
            pytest.fail(f"`lookalike {' '.join(args)}` exited with {code}:\n{err[-3000:]}")
        return subprocess.CompletedProcess(["lookalike", *args], code or 0, out, err)

    yield invoke
    get_settings.cache_clear()
