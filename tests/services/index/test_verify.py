"""`index verify` compares each index with the catalog and never loads a corrupt snapshot."""

from __future__ import annotations

import pytest
from sqlalchemy import delete, select, update

from lookalike.services.catalog.models import Embedding
from lookalike.services.index.snapshots import snapshot_all
from lookalike.services.index.verify import verify_all
from lookalike.services.runtime import Runtime

pytestmark = pytest.mark.slow


def test_verify_finds_extra_and_stale_ids_and_skips_a_corrupt_snapshot(
        photo_home: Runtime) -> None:
    runtime = photo_home
    snapshot_all(runtime)
    [clean] = verify_all(runtime)
    assert clean.ok and clean.vectors > 3, clean.advice()
    with runtime.session() as session:
        ids = sorted(session.scalars(Embedding.__table__.select().with_only_columns(
            Embedding.image_id)))
        # Behind the change log's back: one vector vanishes, another changes.
        session.execute(delete(Embedding).where(Embedding.image_id == ids[0]))
        other = session.scalar(select(Embedding.vector).where(Embedding.image_id == ids[2]))
        session.execute(update(Embedding).where(Embedding.image_id == ids[1])
                        .values(vector=other))
        session.commit()
    [report] = verify_all(runtime)
    assert report.extra == [ids[0]] and report.stale == [ids[1]] and report.missing == []
    snapshot = next(runtime.settings.layout.indexes.rglob("*.faiss"))
    snapshot.write_bytes(snapshot.read_bytes()[:-100])
    [rebuilt] = verify_all(runtime)
    assert rebuilt.broken_snapshots and snapshot.name in rebuilt.broken_snapshots[0]
    assert rebuilt.extra == rebuilt.stale == rebuilt.missing == []
    assert "lookalike index rebuild --space" in report.advice()


def test_verify_reports_the_recorded_snapshot_whose_file_is_gone(photo_home: Runtime) -> None:
    runtime = photo_home
    [report] = snapshot_all(runtime)
    next(runtime.settings.layout.indexes.rglob(report.file)).unlink()
    [checked] = verify_all(runtime)
    assert not checked.ok
    assert any(report.file in line and "missing" in line
               for line in checked.broken_snapshots), checked.broken_snapshots
