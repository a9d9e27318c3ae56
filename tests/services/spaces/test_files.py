"""A space's whitening and trained weight files live as long as a space names them: deleting
a space while another one is created with the same whitening, in either order, leaves the
file that the new space is built from."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lookalike.retrieval.embedding.whitening import PCAWhitening
from lookalike.services.runtime import Runtime
from lookalike.services.setup import init_catalog, open_runtime
from lookalike.services.spaces import create as space_creation
from lookalike.services.spaces.create import SpaceDefinition, create_space
from lookalike.services.spaces.lifecycle import delete_space
from lookalike.services.spaces.lookup import find_space
from lookalike.services.spaces.whitening_store import space_whitening
from tests.services.conftest import ingest_into, make_settings

pytestmark = pytest.mark.slow

WHITENED = SpaceDefinition(whiten_dim=8)
WAIT_S = 60


@pytest.fixture()
def runtime(tmp_path: Path, photo_dir: Path, database_url: str) -> Iterator[Runtime]:
    settings = make_settings(tmp_path / "home", database_url)
    init_catalog(settings)
    with open_runtime(settings) as opened:
        ingest_into(opened, photo_dir)
        yield opened


@pytest.fixture(autouse=True)
def one_whitening(monkeypatch: pytest.MonkeyPatch) -> None:
    """Spaces fitted on the same catalog get the same whitening file: fit it once."""
    fitted: list = []
    real_fit = space_creation._fit_whitening

    def fit_once(*args: object) -> tuple[PCAWhitening, dict]:
        if not fitted:
            fitted.append(real_fit(*args))
        return fitted[0]

    monkeypatch.setattr(space_creation, "_fit_whitening", fit_once)


def whitening_of(runtime: Runtime, name: str) -> PCAWhitening | None:
    """The space's whitening, read and checked as a search would (WhiteningError if lost)."""
    with runtime.session() as session:
        space = find_space(session=session, name=name)
    return space_whitening(space, settings=runtime.settings)


def in_thread(work: Callable[[], object]) -> tuple[threading.Thread, list[BaseException]]:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            work()
        except BaseException as error:  # noqa: BLE001 - handed to the test thread
            errors.append(error)

    return threading.Thread(target=run), errors


def test_a_space_created_between_a_deletes_commit_and_its_file_removal_keeps_the_file(
        runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    first = create_space(runtime, name="first", definition=WHITENED)
    forget = runtime.forget

    def create_meanwhile(space_id: int) -> None:
        second = create_space(runtime, name="second", definition=WHITENED)
        assert second.options.whitening_sha256 == first.options.whitening_sha256
        forget(space_id)

    monkeypatch.setattr(runtime, "forget", create_meanwhile)
    assert delete_space(runtime, name="first").whitening_file is None
    assert whitening_of(runtime, "second") is not None


def test_a_space_deleted_while_another_is_created_with_its_whitening_keeps_the_file(
        runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    create_space(runtime, name="first", definition=WHITENED)
    deleter, errors = in_thread(lambda: delete_space(runtime, name="first"))
    real_store = space_creation.store_whitening

    def store_then_delete(*args: object, **kwargs: object) -> tuple[Path, str]:
        stored = real_store(*args, **kwargs)  # the file is there already: kept
        deleter.start()
        deleter.join(timeout=3)  # a delete that must wait for this creation waits in vain
        return stored

    monkeypatch.setattr(space_creation, "store_whitening", store_then_delete)
    create_space(runtime, name="second", definition=WHITENED)
    deleter.join(WAIT_S)
    assert not deleter.is_alive() and errors == []
    assert whitening_of(runtime, "second") is not None
