"""What a process reuses between requests (keys, the default space, a replica's catch-up) is
never older than the catalog: any commit, from this process or another, is seen by the next
request."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text

from lookalike.services.auth.keys import (
    create_api_key,
    identify,
    keys_required,
    revoke_api_key,
)
from lookalike.services.bench.synthetic import add_synthetic_images
from lookalike.services.catalog.clock import CatalogClock
from lookalike.services.catalog.spaces import set_default_space
from lookalike.services.search.filters import Filters
from lookalike.services.search.inline import answers_inline
from lookalike.services.search.query import NO_FILTERS, search_vector
from lookalike.services.setup import init_catalog, open_runtime
from tests.services.conftest import make_settings, synthetic_space


def test_the_clock_moves_on_every_commit_and_only_then(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "home")
    init_catalog(settings)
    clock = CatalogClock(settings.catalog_url)
    with open_runtime(settings) as writer:
        before = clock.now()
        assert before is not None and clock.now() == before  # nothing committed: same token
        with writer.read_session() as session:
            session.execute(text("SELECT count(*) FROM image"))
        assert clock.now() == before  # a read is no change
        create_api_key(writer, name="robot", scopes="search")
        assert clock.now() != before
    clock.close()


def test_postgresql_has_no_cheap_clock_so_nothing_is_reused() -> None:
    clock = CatalogClock("postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    assert clock.now() is None


def test_keys_made_or_revoked_by_another_process_count_at_the_next_request(
        tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "home")
    init_catalog(settings)
    env = {**os.environ, "LOOKALIKE_HOME": str(settings.home)}
    env.pop("LOOKALIKE_DATABASE_URL", None)
    cli = [sys.executable, "-m", "lookalike.services.cli"]
    with open_runtime(settings) as server:
        assert keys_required(server) is False and keys_required(server) is False
        created = subprocess.run([*cli, "keys", "create", "robot", "--scope", "search"],
                                 env=env, capture_output=True, text=True, timeout=120,
                                 check=True)
        secret = created.stdout.strip()
        assert keys_required(server) is True
        who = identify(server, secret)
        assert who is not None and who.name == "robot" and identify(server, secret) == who
        with open_runtime(settings) as other:  # another connection pool, as another process
            revoke_api_key(other, name="robot")
        assert identify(server, secret) is None
        assert keys_required(server) is False


def test_a_search_sees_vectors_added_elsewhere_right_after_the_commit(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "home")
    init_catalog(settings)
    with open_runtime(settings) as server, open_runtime(settings) as ingester:
        space = synthetic_space(ingester, "synthetic", count=5)
        first = search_vector(server, space_name="synthetic", k=3, image_id=1)
        assert first.results[0].image_id == 1
        again = search_vector(server, space_name="synthetic", k=3, image_id=1)
        assert [h.image_id for h in again.results] == [h.image_id for h in first.results]
        added = [int(i) for batch in add_synthetic_images(ingester, space_id=space.id, dim=16,
                                                          count=5, seed=1) for i in batch.ids]
        newest = max(added)
        found = search_vector(server, space_name="synthetic", k=1, image_id=newest)
        assert found.results[0].image_id == newest
        assert found.results[0].score == pytest.approx(1.0, abs=1e-5)


def test_a_new_default_space_is_searched_at_once(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "home")
    init_catalog(settings)
    with open_runtime(settings) as server, open_runtime(settings) as admin:
        synthetic_space(admin, "a", count=4)
        synthetic_space(admin, "b", count=4, seed=3)
        shared = [int(i) for batch in add_synthetic_images(admin, space_id=1, dim=16, count=1,
                                                           seed=3) for i in batch.ids]
        for name in ("a", "b", "a"):
            with admin.session() as session:
                set_default_space(session=session, name=name)
                session.commit()
            assert search_vector(server, space_name=None, k=1, image_id=shared[0]).space == name


def test_only_a_search_whose_answers_are_kept_is_answered_on_the_event_loop(
        tmp_path: Path) -> None:
    """A search by id runs on the loop only while the space and 'no videos' are kept since
    the last commit and it needs no network, decode or scan; anything else goes to a thread."""
    settings = make_settings(tmp_path / "home")
    init_catalog(settings)
    with open_runtime(settings) as server, open_runtime(settings) as admin:
        space = synthetic_space(admin, "s", count=5)

        def light(**changes: object) -> bool:
            request: dict = {"space_name": "s", "image_id": 1, "url": None, "box": None,
                             "filters": NO_FILTERS, "verify": None, **changes}
            return answers_inline(server, **request)

        assert not light()  # nothing kept yet: the first search reads the catalog
        search_vector(server, space_name="s", k=3, image_id=1)
        assert light()
        assert not light(filters=Filters(label="shoes"))
        assert not light(verify=True)
        assert not light(box="0,0,5,5")
        assert not light(scope="regions")  # re-ranks by decoding the regions' originals
        assert not light(image_id=None, url="http://127.0.0.1:9/a.jpg")
        for _ in add_synthetic_images(admin, space_id=space.id, dim=16, count=2, seed=1):
            pass
        assert not light()  # committed elsewhere: what was kept may be stale
        search_vector(server, space_name="s", k=3, image_id=1)
        assert light()


def test_an_answer_shows_what_another_process_changed_in_a_hit_right_after_the_commit(
        tmp_path: Path) -> None:
    """Hit rows are kept between answers (services/catalog/hitrows.py) only while nothing
    is committed: a label set elsewhere shows in the next answer."""
    settings = make_settings(tmp_path / "home")
    init_catalog(settings)
    with open_runtime(settings) as server, open_runtime(settings) as admin:
        synthetic_space(admin, "s", count=5)
        first = search_vector(server, space_name="s", k=3, image_id=1)
        assert first.results[0].image_id == 1 and first.results[0].label is None
        assert search_vector(server, space_name="s", k=3, image_id=1).results == first.results
        with admin.session() as session:
            session.execute(text("UPDATE image SET label = 'renamed' WHERE id = 1"))
            session.commit()
        again = search_vector(server, space_name="s", k=3, image_id=1)
        assert again.results[0].label == "renamed"
        assert [h.image_id for h in again.results] == [h.image_id for h in first.results]
