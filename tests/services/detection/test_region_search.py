"""Region search on real scenes with the real backbone: regions embedded from their crops,
scope=regions (service, HTTP and CLI) answering the scene with the object's box, a reindex
filling a new space's region space, ingest --detect storing and indexing regions, and the
regions benchmark on a tiny configuration."""

from __future__ import annotations

import io
import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from lookalike.retrieval.detection.coco import read_coco
from lookalike.retrieval.detection.scenes import SceneSpec, generate_scenes, visible_shares
from lookalike.services.api.app import create_app
from lookalike.services.catalog import spaces as space_queries
from lookalike.services.catalog.regions import add_regions
from lookalike.services.catalog.schemas import RegionCreate
from lookalike.services.detection.embedding import embed_regions, find_region_space
from lookalike.services.detection.scenes import scene_backgrounds, scene_glyphs, write_scenes
from lookalike.services.errors import InvalidRequest
from lookalike.services.evaluation.regions import lone_object, run_regions
from lookalike.services.ingest.pipeline import ingest_items
from lookalike.services.ingest.sources import collect_items
from lookalike.services.runtime import Runtime
from lookalike.services.search.filters import Filters
from lookalike.services.search.query import search_vector
from lookalike.services.setup import init_catalog, open_runtime
from lookalike.services.spaces.create import SpaceDefinition, create_space
from lookalike.services.spaces.lookup import find_space
from tests import imagefactory
from tests.services.conftest import fill_space, make_settings, write_photos

pytestmark = pytest.mark.slow

SPEC = SceneSpec(size=128, min_object=32, max_object=64, max_objects=3)


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("scenes")
    write_scenes(folder, images=6, seed=11, spec=SPEC, split="held-out")
    return folder


@pytest.fixture()
def catalog(tmp_path: Path, scenes: Path) -> Iterator[tuple[Runtime, dict[str, int]]]:
    """The scenes ingested (the first three in collection 'left', the rest 'right') with
    their true boxes stored as regions and embedded; each file name's image id."""
    settings = make_settings(tmp_path / "home")
    init_catalog(settings)
    files = sorted((scenes / "images").glob("*.png"))
    ids: dict[str, int] = {}
    with open_runtime(settings) as runtime:
        for part, collection in ((files[:3], "left"), (files[3:], "right")):
            summary = ingest_items(runtime, collect_items(part, collection=collection))
            ids.update({f"images/{Path(o.source).name}": int(o.image_id or 0)
                        for o in summary.outcomes})
        coco = read_coco(scenes / "annotations.json")
        with runtime.session() as session:
            for image in coco.images:
                add_regions(session=session, image_id=ids[image.file_name], regions=[
                    RegionCreate(x0=b[0], y0=b[1], x1=b[2], y1=b[3],
                                 label=coco.classes[label - 1], detector="truth")
                    for b, label in zip(image.boxes, image.labels, strict=True)])
            session.commit()
        assert embed_regions(runtime) == sum(len(i.boxes) for i in coco.images)
        yield runtime, ids


def _png(path: Path) -> bytes:
    buffer = io.BytesIO()
    Image.open(path).save(buffer, format="PNG")
    return buffer.getvalue()


def test_a_box_of_a_scene_finds_that_scene_and_its_region(
        catalog: tuple[Runtime, dict[str, int]], scenes: Path) -> None:
    runtime, ids = catalog
    coco = read_coco(scenes / "annotations.json")
    for image in coco.images:
        box = image.boxes[0]
        query = _png(scenes / image.file_name)
        answer = search_vector(runtime, space_name=None, k=3, query=query, scope="regions",
                               box=",".join(str(v) for v in box))
        top = answer.results[0]
        assert answer.mode == "regions"
        assert top.image_id == ids[image.file_name]
        assert top.regions[0].box == tuple(float(v) for v in box)
        assert len({hit.image_id for hit in answer.results}) == len(answer.results)
        for hit in answer.results:
            similarities = [r.similarity for r in hit.regions]
            assert similarities == sorted(similarities, reverse=True)
        right = search_vector(runtime, space_name=None, k=6, query=query, scope="regions",
                              filters=Filters(collection="right"),
                              box=",".join(str(v) for v in box))
        assert right.mode == "regions+filters"
        assert {hit.collection for hit in right.results} == {"right"}


def test_a_catalogued_image_queries_regions_as_its_original_would(
        catalog: tuple[Runtime, dict[str, int]], scenes: Path) -> None:
    """scope=regions with image_id describes the stored original as regions are described
    (the region space's vectors are wider than the image space's: its tapped block)."""
    runtime, ids = catalog
    name = sorted(ids)[0]
    by_id = search_vector(runtime, space_name=None, k=3, image_id=ids[name], scope="regions")
    by_bytes = search_vector(runtime, space_name=None, k=3, scope="regions",
                             query=(scenes / name).read_bytes())
    assert by_id.mode == "regions" and by_id.results
    assert [(h.image_id, h.regions[0].id) for h in by_id.results] == [
        (h.image_id, h.regions[0].id) for h in by_bytes.results]
    assert [h.score for h in by_id.results] == pytest.approx([h.score for h in by_bytes.results])


def test_reindex_fills_the_new_spaces_region_space_and_http_answers_regions(
        catalog: tuple[Runtime, dict[str, int]], scenes: Path) -> None:
    runtime, ids = catalog
    create_space(runtime, name="gem", definition=SpaceDefinition(pooling="gem"))
    fill_space(runtime, "gem")
    with runtime.read_session() as session:
        default = space_queries.get_default_space(session=session)
        assert default is not None
        counts = {name: space_queries.vector_count(
            session=session, space_id=space.id)
            for name in (f"{default.name}:regions", "gem:regions")
            if (space := space_queries.get_space(session=session, name=name)) is not None}
    assert len(counts) == 2 and counts["gem:regions"] == counts[f"{default.name}:regions"] > 0
    image = read_coco(scenes / "annotations.json").images[1]
    box = ",".join(str(v) for v in image.boxes[0])
    with TestClient(create_app(runtime.settings)) as client:
        upload = {"file": ("q.png", _png(scenes / image.file_name))}
        answer = client.post(f"/v1/search?space=gem&scope=regions&k=2&box={box}", files=upload)
        assert answer.status_code == 200, answer.text
        top = answer.json()["results"][0]
        assert top["image_id"] == ids[image.file_name]
        assert top["region"]["box"] == [float(v) for v in image.boxes[0]]
        assert top["region"]["label"] in read_coco(scenes / "annotations.json").classes
        assert top["region"]["detector"] == "truth" and top["regions"][0] == top["region"]
        assert top["region"]["image_size"] == [128, 128]
        plain = client.post("/v1/search?k=2", files=upload).json()["results"][0]
        assert plain["region"] is None and plain["regions"] is None
        bad = client.post("/v1/search?scope=objects", files=upload)
        assert bad.status_code == 422
        words = client.post("/v1/search?scope=regions", json={"text": "shirt"})
        assert words.status_code == 422 and "scope=regions" in words.json()["detail"]
        # a person's box on upload is a 'user' region, indexed at once
        other = _png(scenes / "images" / "scene-00002.png")
        new = Image.open(io.BytesIO(other)).transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        buffer = io.BytesIO()
        new.save(buffer, format="PNG")
        refused = client.post("/v1/images", files={"file": ("n.png", buffer.getvalue())},
                              data={"box": "0,0,500,20"})
        assert refused.status_code == 422 and "outside the image" in refused.json()["detail"]
        stored = client.post("/v1/images", files={"file": ("n.png", buffer.getvalue())},
                             data={"box": "10,20,70,90", "box_label": "mine"})
        assert stored.status_code == 201, stored.text
        body = stored.json()
        assert body["region"]["detector"] == "user" and body["region"]["label"] == "mine"
        assert body["region"]["box"] == [10, 20, 70, 90]
        crop = new.crop((10, 20, 70, 90))
        query = io.BytesIO()
        crop.save(query, format="PNG")
        found = client.post("/v1/search?scope=regions&k=1",
                            files={"file": ("q.png", query.getvalue())}).json()["results"][0]
        assert found["image_id"] == body["id"]
        assert found["region"]["id"] == body["region"]["id"]
        # detect= on upload: an unknown detector stores nothing; faces finds the astronaut's
        portrait = imagefactory.png_bytes("astronaut", size=(256, 256))
        before = client.get("/v1/images").json()
        unknown = client.post("/v1/images", files={"file": ("a.png", portrait)},
                              data={"detect": "nosuch"})
        assert unknown.status_code == 404 and "nosuch" in unknown.json()["detail"]
        assert client.get("/v1/images").json() == before
        detected = client.post("/v1/images", files={"file": ("a.png", portrait)},
                               data={"detect": "faces"})
        assert detected.status_code == 201 and detected.json()["detected"] == 1
        listed = client.get(f"/v1/images/{detected.json()['id']}/regions").json()["regions"]
        assert [r["detector"] for r in listed] == ["faces"]


def test_ingest_detect_stores_and_indexes_regions(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    for path in write_photos(tmp_path / "all"):
        if path.stem in ("astronaut", "grace_hopper", "coffee"):
            photos.mkdir(exist_ok=True)
            path.rename(photos / path.name)
    home = tmp_path / "home"
    env = {**os.environ, "LOOKALIKE_HOME": str(home)}
    env.pop("LOOKALIKE_DATABASE_URL", None)

    def lookalike(*args: str) -> subprocess.CompletedProcess:
        done = subprocess.run([sys.executable, "-m", "lookalike.services.cli", *args], env=env,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"lookalike {' '.join(args)}: {done.stderr}"
        return done

    lookalike("init")
    out = lookalike("ingest", str(photos), "--detect", "faces").stdout
    assert "detector faces: 2 regions stored on 3 images, 2 region vectors indexed" in out
    with sqlite3.connect(home / "catalog.db") as db:
        faces = db.execute("SELECT i.source_uri FROM region r JOIN image i ON i.id = r.image_id "
                           "WHERE r.detector = 'faces'").fetchall()
        (vectors,) = db.execute("SELECT count(*) FROM embedding WHERE region_id IS NOT NULL"
                                ).fetchone()
    assert sorted(Path(f[0]).stem for f in faces) == ["astronaut", "grace_hopper"]
    assert vectors == 2
    answer = json.loads(lookalike("search", str(photos / "astronaut.jpg"), "--scope",
                                  "regions", "--box", "160,30,290,200", "--json").stdout)
    assert Path(answer["results"][0]["source"]).stem == "astronaut"
    assert answer["results"][0]["region"]["detector"] == "faces"
    unknown = subprocess.run([sys.executable, "-m", "lookalike.services.cli", "ingest",
                              str(photos), "--detect", "nosuch"], env=env, capture_output=True,
                             text=True, timeout=600)
    assert unknown.returncode != 0 and "nosuch" in unknown.stderr


def test_the_regions_benchmark_gives_figures_on_a_tiny_configuration(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "home")
    result = run_regions(settings, scenes=6, queries=8, size=96, seed=3)
    assert (result.queries, result.scenes, result.regions_source) == (8, 6, "truth")
    assert (result.layer, result.rerank, result.shift) == (13, 10, 1)  # what a new space gets
    assert result.regions_stored == result.objects >= 8
    assert len(result.per_query) == 8
    hits = sum(q["region_hit"] for q in result.per_query)
    assert result.region_recall_at_1 == round(hits / 8, 4)
    assert result.image_recall_at_1 == round(sum(q["image_hit"] for q in result.per_query) / 8,
                                             4)
    assert 0 <= result.region_recall_at_1 <= result.region_scene_at_1 <= 1
    missed = [q["class"] for q in result.per_query if not q["region_hit"]]
    assert result.misses_by_class() == {name: missed.count(name) for name in set(missed)}
    assert result.to_public()["misses_by_class"] == result.misses_by_class()
    # the true boxes are the regions, so each queried object has one
    assert result.box_stored == 1.0 and result.misses_without_box() == 0
    shown = [q for q in result.per_query if q["visible"] >= 0.5]
    assert all(0 <= q["visible"] <= 1 for q in result.per_query)
    assert result.recall_in_view() == round(sum(q["region_hit"] for q in shown) / len(shown), 4)
    hidden, found = result.mostly_hidden()
    assert hidden == 8 - len(shown) and found <= hidden
    assert result.to_public()["mostly_hidden_queries"] == hidden


def test_a_mostly_hidden_object_is_told_apart_by_what_its_query_shows() -> None:
    """The visible share a query is filed under is the share of the object's pixels its
    lone image shows, so "less than half in view" is what a person sees in the query."""
    made = generate_scenes(scene_glyphs("held-out"), scene_backgrounds("held-out"), count=200,
                           seed=5, spec=SceneSpec(size=96, min_object=8, max_object=48,
                                                  max_objects=6))
    shares = [(scene, i, share) for scene in made
              for i, share in enumerate(visible_shares(scene))]
    assert min(share for *_, share in shares) < 0.5 < max(share for *_, share in shares)
    for scene, index, share in shares:
        pixels = np.asarray(Image.open(io.BytesIO(lone_object(scene, index,
                                                              np.random.default_rng(0)))))
        shown = (pixels != pixels[0, 0]).any(axis=2).sum()  # the margin is background
        in_view = round(share * scene.objects[index].mask.sum())
        assert in_view * 0.97 <= shown <= in_view


def test_the_regions_benchmark_refuses_a_threshold_for_the_true_boxes(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequest, match="no score"):
        run_regions(make_settings(tmp_path / "home"), regions="truth", threshold=0.2)


def test_the_regions_benchmark_tells_a_detectors_missed_objects_apart(tmp_path: Path) -> None:
    """`faces` finds no face in the generated scenes: no object is boxed by a stored region,
    so every miss is the detector's and the ceiling is 0."""
    settings = make_settings(tmp_path / "home")
    result = run_regions(settings, regions="faces", scenes=6, queries=8, size=96, seed=3)
    assert result.regions_stored == 0
    assert result.box_stored == 0.0 and result.region_recall_at_1 == 0.0
    assert result.misses_without_box() == 8
    assert result.to_public()["misses_without_box"] == 8


def test_the_first_hit_does_not_depend_on_how_many_are_asked_for(
        catalog: tuple[Runtime, dict[str, int]], monkeypatch: pytest.MonkeyPatch) -> None:
    """The re-ranking looks at the region space's `region_rerank` best regions whatever k
    is (a search for one result fetched five before, so it re-ranked five and could answer
    another first hit than a search for more), and a search for one result answers the
    first result of a search for more."""
    runtime, _ = catalog
    with runtime.read_session() as session:
        space = find_space(session=session, name=None)
        target = find_region_space(session, space)
        assert target is not None
        replica = runtime.replica(target, session=session)
    asked: list[int] = []
    search = replica.search

    def recorded(vector: np.ndarray, k: int, **options: object) -> object:
        asked.append(k)
        return search(vector, k, **options)

    monkeypatch.setattr(replica, "search", recorded)
    made = generate_scenes(scene_glyphs("held-out"), scene_backgrounds("held-out"), count=6,
                           seed=11, spec=SPEC)
    rng = np.random.default_rng(3)
    for scene in made:
        for index in range(len(scene.objects)):
            query = lone_object(scene, index, rng)
            one = search_vector(runtime, space_name=None, k=1, query=query, scope="regions")
            many = search_vector(runtime, space_name=None, k=6, query=query, scope="regions")
            assert (one.results[0].image_id, one.results[0].regions[0].id) == (
                many.results[0].image_id, many.results[0].regions[0].id)
            assert one.results[0].score == pytest.approx(many.results[0].score)
    assert target.options.region_rerank == 10
    assert min(asked) >= target.options.region_rerank
