"""The Alembic revisions build exactly the models' schema, and undo it, on both databases."""

from __future__ import annotations

import subprocess
import sys

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import delete, inspect, select

from lookalike.services.catalog.fulltext import FULL_TEXT_TABLE, managed_by_models
from lookalike.services.catalog.migrate import (
    current_revision,
    downgrade,
    upgrade,
)
from lookalike.services.catalog.models import Base, Space
from lookalike.services.catalog.session import make_engine, make_session_factory
from tests.services.catalog.builders import space

TABLES_0001 = {"image", "space", "region", "embedding", "index_change", "job", "index_snapshot"}
TABLES_0002 = TABLES_0001 | {"evaluation"}
TABLES_0005 = TABLES_0002 | {"api_key"}
TABLES_0008 = TABLES_0005 | {"text_model", "vector_follower"}
TABLES = TABLES_0008 | {"video"}
CAPTION_COLUMNS = {"title", "caption", "topic", "topic_score"}
CORNERS = ("x0", "y0", "x1", "y1")
SIZES = ("x", "y", "w", "h")
LEASE = {"lease_owner", "lease_heartbeat_at", "lease_expires_at"}


def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        names = set(inspect(engine).get_table_names()) - {"alembic_version"}
        return {name for name in names if not name.startswith(FULL_TEXT_TABLE)}
    finally:
        engine.dispose()


def _columns(url: str, table: str) -> set[str]:
    engine = make_engine(url)
    try:
        return {column["name"] for column in inspect(engine).get_columns(table)}
    finally:
        engine.dispose()


def test_upgrade_downgrade_upgrade(database_url: str) -> None:
    assert current_revision(database_url) is None
    upgrade(database_url)
    assert current_revision(database_url) == "0011"
    assert _tables(database_url) == TABLES
    assert {"video_id", "t"} <= _columns(database_url, "image")
    assert _columns(database_url, "region") >= set(CORNERS) | {"detector"}
    downgrade(database_url, "0009")
    assert _tables(database_url) == TABLES_0008
    assert {"video_id", "video_ts"} <= _columns(database_url, "image")
    assert "t" not in _columns(database_url, "image")
    downgrade(database_url, "0008")
    assert _columns(database_url, "region") >= set(SIZES) | {"source"}
    assert not set(CORNERS) & _columns(database_url, "region")
    downgrade(database_url, "0007")
    assert _tables(database_url) == TABLES_0005 | {"text_model"}
    assert _columns(database_url, "image") >= CAPTION_COLUMNS
    downgrade(database_url, "0006")
    assert _tables(database_url) == TABLES_0005
    assert not CAPTION_COLUMNS & _columns(database_url, "image")
    downgrade(database_url, "0005")
    assert current_revision(database_url) == "0005"
    assert _columns(database_url, "job") >= LEASE
    assert "filled_at" in _columns(database_url, "space")
    downgrade(database_url, "0004")
    assert current_revision(database_url) == "0004"
    assert "filled_at" in _columns(database_url, "space")
    downgrade(database_url, "0003")
    assert current_revision(database_url) == "0003"
    assert _tables(database_url) == TABLES_0005
    assert not LEASE & _columns(database_url, "job")
    assert "filled_at" not in _columns(database_url, "space")
    downgrade(database_url, "0002")
    assert _tables(database_url) == TABLES_0002
    downgrade(database_url, "0001")
    assert current_revision(database_url) == "0001"
    assert _tables(database_url) == TABLES_0001
    upgrade(database_url)
    assert _tables(database_url) == TABLES
    assert _columns(database_url, "job") >= LEASE
    downgrade(database_url, "base")
    assert current_revision(database_url) is None
    assert _tables(database_url) == set()
    upgrade(database_url)
    assert _tables(database_url) == TABLES


def _space_ids(url: str, *, add: tuple[str, ...] = (), remove: str | None = None) -> list[int]:
    """Add spaces, delete one by name, and return the ids of the spaces left."""
    engine = make_engine(url)
    try:
        with make_session_factory(engine)() as session:
            for name in add:
                space(session, name)
            if remove is not None:
                session.execute(delete(Space).where(Space.name == remove))
            session.commit()
            return list(session.scalars(select(Space.id).order_by(Space.id)))
    finally:
        engine.dispose()


def test_a_deleted_space_id_is_never_given_out_again(database_url: str) -> None:
    upgrade(database_url, "0004")
    assert _space_ids(database_url, add=("a", "b")) == [1, 2]
    upgrade(database_url)  # the rows keep their ids through the table copy on SQLite
    assert _space_ids(database_url, remove="b") == [1]
    assert _space_ids(database_url, add=("c",)) == [1, 3]
    downgrade(database_url, "0004")
    assert _space_ids(database_url) == [1, 3]


def test_0004_marks_the_default_space_and_those_reindexed_as_filled(database_url: str) -> None:
    upgrade(database_url, "0003")
    space = sa.table("space", *(sa.column(name) for name in (
        "name", "backbone", "layer", "pooling", "dim", "options", "is_default")))
    job = sa.table("job", sa.column("kind"), sa.column("params", sa.JSON()),
                   sa.column("state"), sa.column("result", sa.JSON()))
    engine = make_engine(database_url)
    try:
        with engine.begin() as connection:
            connection.execute(sa.insert(space), [
                {"name": name, "backbone": "b", "layer": "l", "pooling": "gap", "dim": 4,
                 "options": "{}", "is_default": name == "main"}
                for name in ("main", "reindexed", "half", "new")])
            connection.execute(sa.insert(job), [
                {"kind": "reindex", "state": state, "result": {},
                 "params": {"space": name, "batch_size": 1, "pages": [], "batch_sizes": []}}
                for name, state in (("reindexed", "succeeded"), ("half", "running"))])
        upgrade(database_url)
        with engine.connect() as connection:
            rows = connection.execute(sa.text("SELECT name, filled_at FROM space"))
            filled = {name for name, filled_at in rows if filled_at is not None}
    finally:
        engine.dispose()
    assert filled == {"main", "reindexed"}


SHA = "c" * 64
WEIGHTS = f"weights/mobilenet_v2-{'d' * 64}.pt"
HEAD = f"weights/head-{'e' * 64}.pt"


def _old_rows(connection: sa.Connection) -> None:
    """Rows as revisions up to 0005 wrote them: paths absolute, or relative to the working
    directory of the command that stored the file; a weight file given by hand stays."""
    image = sa.table("image", *(sa.column(name) for name in (
        "sha256", "source_uri", "stored_path", "status")), sa.column("meta", sa.JSON()))
    connection.execute(sa.insert(image), [
        {"sha256": sha * 64, "source_uri": f"{sha}.jpg", "stored_path": path,
         "status": "embedded" if path else "failed", "meta": {}}
        for sha, path in (("a", f"/srv/old/home/originals/aa/aa/{'a' * 64}.png"),
                          ("b", f"home/originals/bb/bb/{'b' * 64}.jpg"), ("c", None))])
    space = sa.table("space", *(sa.column(name) for name in (
        "name", "backbone", "layer", "pooling", "dim", "is_default")),
        sa.column("options", sa.JSON()))
    job = sa.table("job", sa.column("kind"), sa.column("params", sa.JSON()),
                   sa.column("state"), sa.column("result", sa.JSON()))
    connection.execute(sa.insert(space), [
        {"name": "tuned", "backbone": "b", "layer": "l", "pooling": "gap", "dim": 4,
         "is_default": True, "options": {
             "weights_file": f"/srv/old/home/{WEIGHTS}",
             "head": {"file": f"../data/home/{HEAD}", "sha256": "e" * 64, "in_dim": 4,
                      "out_dim": 4}}},
        {"name": "given", "backbone": "b", "layer": "l", "pooling": "gap", "dim": 4,
         "is_default": False, "options": {"weights_file": "/models/weights/mine.pth"}}])
    connection.execute(sa.text(
        "INSERT INTO index_snapshot (space_id, path, factory, vector_count, watermark, sha256) "
        f"VALUES (1, 'home/indexes/space-1/snapshot-00000002.faiss', 'Flat', 2, 2, '{SHA}')"))
    connection.execute(sa.insert(job), [{
        "kind": "finetune", "state": "succeeded", "params": {"request": {}, "batch_sizes": []},
        "result": {"weights_file": f"/srv/old/home/{WEIGHTS}", "head_file": f"home/{HEAD}",
                   "curves": "/srv/old/home/jobs/1/curves.png", "added": 0}}])


def _paths(connection: sa.Connection) -> dict[str, object]:
    """Every stored path of the rows `_old_rows` wrote, as the catalog holds them now."""
    one = connection.execute
    spaces = dict(one(sa.select(sa.column("name"), sa.column("options", sa.JSON()))
                      .select_from(sa.table("space"))).all())
    result = one(sa.select(sa.column("result", sa.JSON())).select_from(sa.table("job"))).scalar()
    return {
        "images": one(sa.text("SELECT stored_path FROM image ORDER BY id")).scalars().all(),
        "snapshot": one(sa.text("SELECT path FROM index_snapshot")).scalar(),
        "tuned": (spaces["tuned"]["weights_file"], spaces["tuned"]["head"]["file"]),
        "given": spaces["given"]["weights_file"],
        "job": (result["weights_file"], result["head_file"], result["curves"])}


def test_0006_records_every_stored_path_relative_to_the_home(database_url: str) -> None:
    upgrade(database_url, "0005")
    engine = make_engine(database_url)
    try:
        with engine.begin() as connection:
            _old_rows(connection)
        upgrade(database_url)
        with engine.connect() as connection:
            paths = _paths(connection)
    finally:
        engine.dispose()
    assert paths == {
        "images": [f"originals/aa/aa/{'a' * 64}.png", f"originals/bb/bb/{'b' * 64}.jpg", None],
        "snapshot": "indexes/space-1/snapshot-00000002.faiss",
        "tuned": (WEIGHTS, HEAD),
        "given": "/models/weights/mine.pth",
        "job": (WEIGHTS, HEAD, "jobs/1/curves.png")}


def test_migrated_schema_matches_models(migrated_url: str) -> None:
    engine = make_engine(migrated_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={
                "compare_type": True, "include_object": managed_by_models})
            assert compare_metadata(context, Base.metadata) == []
    finally:
        engine.dispose()


def test_catalog_imports_neither_torch_nor_faiss() -> None:
    code = (
        "import sys, lookalike.services.catalog.embeddings, lookalike.services.catalog.images, "
        "lookalike.services.catalog.migrate, lookalike.services.catalog.snapshots; "
        "print(sorted(m for m in ('torch', 'faiss') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def _fts_ids(connection: sa.Connection, word: str) -> list[int]:
    """Image ids the full-text structure finds for one word, on either database."""
    if connection.dialect.name == "postgresql":
        query = ("SELECT id FROM image WHERE caption_tsv @@ plainto_tsquery('english', :w) "
                 "ORDER BY id")
    else:
        query = "SELECT rowid FROM image_fts WHERE image_fts MATCH :w ORDER BY rowid"
    return list(connection.execute(sa.text(query), {"w": word}).scalars())


def test_0010_keeps_full_text_in_step_and_a_frame_through_downgrade(database_url: str) -> None:
    upgrade(database_url)
    engine = make_engine(database_url)
    try:
        with engine.begin() as connection:
            connection.execute(sa.text(
                "INSERT INTO video (sha256, source_uri, byte_size, container, codec, width, "
                f"height, fps, duration) VALUES ('{'f' * 64}', 'a.mp4', 10, 'mp4', 'h264', 4, "
                "4, 25, 2.0)"))
            connection.execute(sa.text(
                "INSERT INTO image (sha256, source_uri, status, meta, caption, video_id, t) "
                f"VALUES ('{'a' * 64}', 'a.mp4#t=1.5', 'embedded', '{{}}', 'a red bicycle', "
                "1, 1.5)"))
            assert _fts_ids(connection, "bicycle") == [1]
            connection.execute(sa.text("UPDATE image SET caption = 'a blue kite'"))
            assert _fts_ids(connection, "kite") == [1]
        downgrade(database_url, "0009")
        with engine.begin() as connection:
            row = connection.execute(sa.text("SELECT video_id, video_ts FROM image")).one()
            assert tuple(row) == ("1", 1.5)
            connection.execute(sa.text("UPDATE image SET caption = 'a green boat'"))
            assert _fts_ids(connection, "boat") == [1]
            assert _fts_ids(connection, "kite") == []
    finally:
        engine.dispose()
