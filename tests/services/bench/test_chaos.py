"""`bench chaos`: two rounds of ingest through a real worker and a real API process, each
with one SIGKILL and a restart, end with nothing missing, phantom or doubled; and its checks
do see an image never catalogued, a vector lost from the catalog, an original gone."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import delete, select

from lookalike.services.bench.chaos import ChaosReport, check_catalog, run_chaos
from lookalike.services.catalog.models import Embedding, Image
from lookalike.services.index.snapshots import snapshot_all
from lookalike.services.setup import init_catalog, open_runtime
from tests.services.bench.conftest import BENCH_REDIS_URL
from tests.services.conftest import make_settings

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def test_two_rounds_of_kills_lose_nothing_and_add_nothing_twice(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "home", broker_url=BENCH_REDIS_URL)
    init_catalog(settings)
    report, problems = run_chaos(settings, rounds=2, images=3, seed=7)
    assert problems == []
    assert (report.survived, sum(report.kills.values())) == (2, 2)
    assert report.catalogued == report.images_sent > 0
    assert (report.missing, report.phantom, report.duplicated_vectors) == (0, 0, 0)
    assert report.jobs == report.jobs_succeeded == 2

    with open_runtime(settings) as runtime:
        snapshot_all(runtime)  # then a vector vanishes from the catalog behind its back
        with runtime.session() as session:
            victim = session.scalars(select(Image).order_by(Image.id).limit(1)).one()
            session.execute(delete(Embedding).where(Embedding.image_id == victim.id))
            session.commit()
        settings.layout.resolve(victim.stored_path).unlink()
        sent = {victim.sha256: b"", "0" * 64: b""}
        checked = ChaosReport(rounds=0)
        found = check_catalog(runtime, sent, checked)
    assert "missing images: 1" in found, found
    assert [p for p in checked.index_problems if "1 extra ids" in p], found
    missing = settings.layout.resolve(victim.stored_path)
    assert any(p.startswith(f"missing {missing}") for p in found), found
