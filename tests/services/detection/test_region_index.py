"""Region vectors in a region space follow their image and their detector's reruns through the
change log, in FAISS replicas of two runtimes on one catalog and in a Milvus (milvus-lite)
collection: searched with scope=regions, they group under their image, best region first."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select

from lookalike.services.catalog import embeddings as embedding_queries
from lookalike.services.catalog import images as image_queries
from lookalike.services.catalog import spaces as space_queries
from lookalike.services.catalog.documents import SpaceOptions
from lookalike.services.catalog.models import Embedding, IndexChange, Space
from lookalike.services.catalog.regions import add_regions, replace_regions
from lookalike.services.catalog.schemas import ImageCreate, RegionCreate, SpaceCreate
from lookalike.services.detection.embedding import ensure_region_space
from lookalike.services.errors import InvalidRequest, SpaceConflict
from lookalike.services.index.replicas import IndexReplica, space_directory
from lookalike.services.ingest.images import delete_image
from lookalike.services.jobs.reindex import create_reindex_job
from lookalike.services.runtime import Runtime
from lookalike.services.search.filters import Filters
from lookalike.services.search.query import search_vector
from lookalike.services.setup import init_catalog, open_runtime
from lookalike.services.spaces.lifecycle import delete_space, list_spaces, set_default
from tests.services.conftest import make_settings

DIM = 8


def _unit(rng: np.random.Generator, count: int) -> np.ndarray:
    rows = rng.standard_normal((count, DIM)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


@pytest.fixture(params=["faiss", "milvus"])
def catalog(request: pytest.FixtureRequest, tmp_path: Path
            ) -> Iterator[tuple[Runtime, Runtime, Space]]:
    """Two runtimes (two API processes) on one catalog with a synthetic image space of the
    given backend holding 6 images (collections x/y alternating)."""
    settings = make_settings(tmp_path / "home")
    init_catalog(settings)
    first, second = open_runtime(settings), open_runtime(settings)
    rows = [ImageCreate(sha256=hashlib.sha256(f"r{i}".encode()).hexdigest(),
                        source_uri=f"synthetic://r/{i}", collection="xy"[i % 2], width=100,
                        height=100) for i in range(6)]
    with first.session() as session:
        space = space_queries.create_space(session=session, data=SpaceCreate(
            name="syn", backbone="synthetic", layer="none", pooling="gap", dim=DIM,
            options=SpaceOptions(backend=request.param)))
        found = image_queries.add_images(session=session, rows=rows)
        ids = [found[row.sha256][0] for row in rows]
        embedding_queries.add_embeddings(
            session=session, space_id=space.id, image_ids=ids,
            vectors=[v.astype("<f4").tobytes() for v in _unit(np.random.default_rng(0), 6)])
        session.commit()
        session.expunge(space)
    yield first, second, space
    first.close()
    second.close()


def _store(runtime: Runtime, space: Space, image_id: int, vectors: np.ndarray,
           detector: str = "truth") -> list[int]:
    """Regions on an image (one per vector) with the given vectors in the region space."""
    with runtime.session() as session:
        boxes = [RegionCreate(x0=10 * i, y0=0, x1=10 * i + 10, y1=10, label=f"l{i}",
                              score=0.9 - 0.1 * i, detector=detector)
                 for i in range(len(vectors))]
        regions = add_regions(session=session, image_id=image_id, regions=boxes)
        target = ensure_region_space(session, session.get(Space, space.id))
        embedding_queries.add_region_embeddings(
            session=session, space_id=target.id, region_ids=[r.id for r in regions],
            vectors=[v.astype("<f4").tobytes() for v in vectors])
        session.commit()
        return [r.id for r in regions]


def _near(vector: np.ndarray, rng: np.random.Generator, noise: float) -> np.ndarray:
    moved = vector + noise * rng.standard_normal(DIM).astype(np.float32)
    return moved / np.linalg.norm(moved)


def _query_regions(runtime: Runtime, image_id: int, **options: object) -> list:
    return search_vector(runtime, space_name="syn", k=6, image_id=image_id, scope="regions",
                         **options).results  # type: ignore[arg-type]


def test_regions_group_under_their_image_and_follow_deletes_and_reruns(
        catalog: tuple[Runtime, Runtime, Space]) -> None:
    first, second, space = catalog
    rng = np.random.default_rng(1)
    with first.read_session() as session:
        query = np.frombuffer(embedding_queries.get_vector(
            session=session, space_id=space.id, image_id=1) or b"", dtype="<f4")
    with pytest.raises(InvalidRequest, match="no regions indexed"):
        _query_regions(first, 1)
    # image 2 holds two regions near the query (one nearer), image 3 one farther, image 4 a
    # region far from it
    near2 = _store(first, space, 2, np.stack([_near(query, rng, 0.05), _near(query, rng, 0.3)]))
    near3 = _store(first, space, 3, np.stack([_near(query, rng, 0.6)]))
    far4 = _store(first, space, 4, -query[None, :])
    for runtime in (first, second):  # a replica in each process, caught up from the log
        results = _query_regions(runtime, 1)
        assert [hit.image_id for hit in results] == [2, 3, 4]
        assert [region.id for region in results[0].regions] == near2
        similarities = [region.similarity for region in results[0].regions]
        assert similarities == sorted(similarities, reverse=True)
        assert results[0].score == similarities[0]
        public = search_vector(runtime, space_name="syn", k=6, image_id=1,
                               scope="regions").to_public()["results"][0]
        assert public["region"]["id"] == near2[0] and public["region"]["box"] == [0, 0, 10, 10]
        assert public["region"]["label"] == "l0" and public["region"]["score"] == 0.9
        assert [r["id"] for r in public["regions"]] == near2
    # filters keep working: collection y is images 2 and 4 (ids 2, 4, 6)
    only_x = _query_regions(second, 1, filters=Filters(collection="x"))
    assert [hit.image_id for hit in only_x] == [3]
    # deleting image 2 takes its regions out of every replica
    delete_image(first, 2)
    with first.read_session() as session:
        assert session.scalar(select(func.count()).select_from(Embedding)
                              .where(Embedding.region_id.in_(near2))) == 0
        removes = session.scalars(select(IndexChange.region_id).where(
            IndexChange.op == "remove", IndexChange.image_id == 2)).all()
        assert sorted(r for r in removes if r is not None) == near2
    for runtime in (second, first):
        assert [hit.image_id for hit in _query_regions(runtime, 1)] == [3, 4]
    # a detector's rerun replaces its regions: the old vectors leave the index
    with first.session() as session:
        replace_regions(session=session, image_id=3, detector="truth", regions=[])
        session.commit()
    assert [hit.image_id for hit in _query_regions(second, 1)] == [4]
    assert [region.id for region in _query_regions(second, 1)[0].regions] == far4
    assert near3  # gone with the rerun
    # an image search never sees region ids: the image space is untouched
    assert {hit.image_id for hit in search_vector(first, space_name="syn", k=6,
                                                  image_id=1).results} == {1, 3, 4, 5, 6}


def test_a_rebuilt_faiss_replica_holds_the_same_regions_as_the_caught_up_one(
        tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "home")
    init_catalog(settings)
    with open_runtime(settings) as runtime:
        rows = [ImageCreate(sha256=hashlib.sha256(f"b{i}".encode()).hexdigest(),
                            source_uri=f"synthetic://b/{i}", width=50, height=50)
                for i in range(3)]
        with runtime.session() as session:
            space = space_queries.create_space(session=session, data=SpaceCreate(
                name="syn", backbone="synthetic", layer="none", pooling="gap", dim=DIM))
            found = image_queries.add_images(session=session, rows=rows)
            session.commit()
            session.expunge(space)
        ids = [found[row.sha256][0] for row in rows]
        rng = np.random.default_rng(2)
        kept = [_store(runtime, space, i, _unit(rng, 2)) for i in ids]
        delete_image(runtime, ids[0])
        with runtime.read_session() as session:
            target = ensure_region_space(session, session.get(Space, space.id))
            live = runtime.replica(target, session=session)
            rebuilt = IndexReplica.open(
                space=target, directory=space_directory(tmp_path / "nowhere", target),
                session=session)
            assert sorted(live.ids().tolist()) == sorted(rebuilt.ids().tolist())
            assert sorted(rebuilt.ids().tolist()) == sorted(kept[1] + kept[2])
            assert space_queries.vector_count(session=session, space_id=target.id) == 4


def test_a_region_space_is_refused_as_default_or_reindexed_and_goes_with_its_image_space(
        tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "home")
    init_catalog(settings)
    with open_runtime(settings) as runtime:
        rows = [ImageCreate(sha256=hashlib.sha256(b"g").hexdigest(), source_uri="synthetic://g",
                            width=50, height=50)]
        with runtime.session() as session:
            for name in ("main", "side"):
                space_queries.create_space(session=session, data=SpaceCreate(
                    name=name, backbone="synthetic", layer="none", pooling="gap", dim=DIM))
            found = image_queries.add_images(session=session, rows=rows)
            side = space_queries.get_space(session=session, name="side")
            session.commit()
            session.expunge(side)
        image_id = found[rows[0].sha256][0]
        with runtime.session() as session:  # embedded in 'side': a live image
            embedding_queries.add_embeddings(
                session=session, space_id=side.id, image_ids=[image_id],
                vectors=[_unit(np.random.default_rng(4), 1)[0].astype("<f4").tobytes()])
            session.commit()
        _store(runtime, side, image_id, _unit(np.random.default_rng(3), 2))
        with runtime.session() as session:  # a third region, not embedded yet: the lag
            add_regions(session=session, image_id=image_id, regions=[RegionCreate(
                x0=0, y0=0, x1=5, y1=5, detector="truth")])
            session.commit()
        listed = {s.name: s for s in list_spaces(runtime)}
        assert (listed["side:regions"].vector_count, listed["side:regions"].lag) == (2, 1)
        with pytest.raises(SpaceConflict, match="holds regions"):
            set_default(runtime, name="side:regions")
        with pytest.raises(InvalidRequest, match="holds regions"):
            create_reindex_job(runtime, space_name="side:regions")
        delete_space(runtime, name="side")
        assert {s.name for s in list_spaces(runtime)} == {"main"}
        with runtime.read_session() as session:
            assert session.scalar(select(func.count()).select_from(Embedding)) == 0
