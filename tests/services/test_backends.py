"""The whole core path on both catalog backends (SQLite file, the real PostgreSQL) and both
vector backends (FAISS replicas, Milvus through milvus-lite)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lookalike.services.catalog import images as image_queries
from lookalike.services.ingest.images import delete_image
from lookalike.services.search.query import search_vector
from lookalike.services.setup import open_runtime
from tests.services.conftest import ingest_into, make_settings

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("vectors", ["faiss", "milvus"])
def test_ingest_search_delete(migrated_url: str, tmp_path: Path, photo_dir: Path,
                              vectors: str) -> None:
    runtime = open_runtime(make_settings(tmp_path / "home", database_url=migrated_url,
                                         vector_backend=vectors))
    photos = sorted(photo_dir.glob("*.jpg"))

    first = ingest_into(runtime, photo_dir)
    again = ingest_into(runtime, photo_dir)

    assert (first.added, again.added, again.duplicates) == (len(photos), 0, len(photos))
    query = photos[3]
    top = search_vector(runtime, space_name=None, k=2, query=query.read_bytes()).results[0]
    assert top.source == str(query.resolve())
    delete_image(runtime, top.image_id)
    after = search_vector(runtime, space_name=None, k=len(photos), query=query.read_bytes())
    assert top.image_id not in [hit.image_id for hit in after.results]
    assert len(after.results) == len(photos) - 1
    with runtime.session() as session:
        assert image_queries.count_images(session=session, status="embedded") == len(photos) - 1
    runtime.close()
