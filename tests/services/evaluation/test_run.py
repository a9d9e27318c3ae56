"""`lookalike evaluate`: hand-computed scores, and whole runs on benchmarks from real photos."""

from __future__ import annotations

import json
import pickle
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from lookalike.services.cli.evaluate import plot_pr_curves
from lookalike.services.config import Settings
from lookalike.services.errors import InvalidRequest
from lookalike.services.evaluation.benchmarks import Benchmark
from lookalike.services.evaluation.run import _expand, evaluate, score_benchmark
from lookalike.services.runtime import Runtime
from lookalike.services.sample import build_sample, bundled_photos
from lookalike.services.setup import init_catalog, open_runtime
from lookalike.services.spaces.create import SpaceDefinition, create_space
from tests.services.cli.test_cli import lookalike
from tests.services.conftest import InProcessCli, fill_space, ingest_into, make_settings


def test_leave_one_out_scores_match_a_hand_computed_example() -> None:
    """Vectors (1,0), (.8,.6), (0,1) labelled a, b, a. Query 0 ranks [1, 2]: its one relevant
    item (2) is second, AP 1/2. Query 1 has no other b: not scored. Query 2 ranks [1, 0]: AP
    1/2. So mAP 0.5, P@1 0, R@1 0, R@10 1."""
    vectors = np.array([[1, 0], [0.8, 0.6], [0, 1]], dtype=np.float32)
    labels = np.array(["a", "b", "a"])
    bench = Benchmark("toy", vectors, vectors, query_labels=labels, gallery_labels=labels,
                      leave_one_out=True)
    totals, _ = score_benchmark(bench, vectors)
    assert totals.queries == 2
    assert totals.map / 2 == pytest.approx(0.5)
    assert totals.precision[1] == 0 and totals.recall[1] == 0
    assert totals.recall[10] / 2 == pytest.approx(1.0)


def test_junk_is_dropped_before_scoring_with_per_query_sets() -> None:
    """Query (1,0) against (.9,.1), (.8,.2), (0,1): junk 0, relevant {1} -> AP 1."""
    gallery = np.array([[0.9, 0.1], [0.8, 0.2], [0, 1]], dtype=np.float32)
    queries = np.array([[1, 0]], dtype=np.float32)
    with_junk = Benchmark("toy", queries, gallery, relevant=[{1}], junk=[{0}])
    without = Benchmark("toy", queries, gallery, relevant=[{1}])
    assert score_benchmark(with_junk, queries)[0].map == pytest.approx(1.0)
    assert score_benchmark(without, queries)[0].map == pytest.approx(0.5)


def unit(*rows: tuple[float, float]) -> np.ndarray:
    vectors = np.array(rows, dtype=np.float64)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_dba_and_alpha_qe_follow_the_hand_computed_sums() -> None:
    """Gallery g0=(1,0), g1=(.6,.8), query (.8,.6), one neighbour, alpha 1. DBA: g0 + .6 g1,
    g1 + .6 g0. The query's best neighbour is then DBA'd g1 (score .9985): the expanded query
    is q + .9985 g1', normalised."""
    gallery = np.array([[1, 0], [0.6, 0.8]], dtype=np.float32)
    query = np.array([[0.8, 0.6]], dtype=np.float32)
    bench = Benchmark("toy", query, gallery, relevant=[{0}])
    expanded = _expand(bench, qe_n=1, dba_n=1, alpha=1.0)
    g0, g1 = unit((1.36, 0.48)), unit((1.2, 0.8))
    assert np.allclose(bench.gallery, np.vstack([g0, g1]), atol=1e-6)
    score = float(query[0] @ g1[0])
    assert score == pytest.approx(0.9985, abs=1e-4)
    assert np.allclose(expanded, unit(tuple(query[0] + score * g1[0])), atol=1e-6)


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    """An empty catalog with two spaces: GAP (default) and R-MAC."""
    settings: Settings = make_settings(tmp_path_factory.mktemp("eval") / "home")
    init_catalog(settings)
    runtime = open_runtime(settings)
    create_space(runtime, name="gap", definition=SpaceDefinition())
    create_space(runtime, name="rmac", definition=SpaceDefinition(pooling="rmac"))
    yield runtime
    runtime.close()


@pytest.mark.slow
def test_fashion_mnist_subset_reports_every_figure_and_the_pixels_baseline(
        runtime: Runtime) -> None:
    result = evaluate(runtime, space_name="gap", benchmark="fashion-mnist", limit=10)
    assert (result.queries, result.gallery) == (10, 100)
    assert 0.3 < result.map <= 1 and 0.3 < result.baseline_map < 0.9
    assert set(result.precision) == {1, 10, 100} and set(result.recall) == {1, 10, 100}
    assert result.recall[100] == pytest.approx(1.0)
    assert result.ann_recall_at_10 == 1.0 and result.index_factory == "Flat"
    assert result.pr_precision[0] >= result.pr_precision[-1]


@pytest.mark.slow
def test_whitening_learned_from_labelled_folders_beats_plain_gap_on_fashion_mnist(
        runtime: Runtime, tmp_path: Path) -> None:
    """Learned whitening from 30 labelled images per class (one sub-folder per class) lifts
    mAP on unseen test queries well above the plain GAP space it starts from."""
    build_sample(tmp_path, fashion_per_class=30)
    definition = SpaceDefinition(whiten_dim=9, whiten_labels=True,
                                 whiten_from=tmp_path / "fashion-mnist")
    space = create_space(runtime, name="gap-lw9", definition=definition)
    assert (space.whitening, space.dim) == ("lw9", 9)
    assert space.options.model_dump(include={"whitening_method", "whitening_fitted_on",
                                             "whitening_labels"}) == {
        "whitening_method": "learned", "whitening_fitted_on": 300, "whitening_labels": 10}
    plain = evaluate(runtime, space_name="gap", benchmark="fashion-mnist", limit=50)
    learned = evaluate(runtime, space_name="gap-lw9", benchmark="fashion-mnist", limit=50)
    assert learned.map > plain.map + 0.1, (plain.map, learned.map)


@pytest.mark.slow
def test_near_duplicates_find_their_original_among_distractors(runtime: Runtime) -> None:
    result = evaluate(runtime, space_name=None, benchmark="near-duplicates", limit=30)
    photos = len(bundled_photos())
    assert result.gallery == photos + 30 and result.queries >= 10 * photos
    assert result.map >= 0.9


@pytest.mark.slow
def test_labels_benchmark_ranks_the_catalogued_images_leave_one_out(
        runtime: Runtime, tmp_path: Path) -> None:
    """Folders astronaut/, coffee/, rocket/ each hold a photo and its mirror image: labelled by
    folder, each image's one relevant item is its twin, which it finds first."""
    for name in ("astronaut", "coffee", "rocket"):
        (tmp_path / name).mkdir()
        _photo(name).save(tmp_path / name / "a.jpg")
        ImageOps.mirror(_photo(name)).save(tmp_path / name / "b.jpg")
    summary = ingest_into(runtime, tmp_path, label_from_dir=True)
    assert summary.added == 6
    result = evaluate(runtime, space_name="gap", benchmark="labels")
    assert (result.queries, result.gallery) == (6, 6)
    assert result.map == pytest.approx(1.0) and result.precision[1] == pytest.approx(1.0)
    assert result.notes == []
    with pytest.raises(InvalidRequest, match="rmac.*0 labelled"):
        evaluate(runtime, space_name="rmac", benchmark="labels")
    create_space(runtime, name="self-taught", definition=SpaceDefinition(
        whiten_dim=2, whiten_labels=True))  # from these very labels
    assert fill_space(runtime, "self-taught")["added"] == 6
    taught = evaluate(runtime, space_name="self-taught", benchmark="labels")
    assert taught.queries == 6 and len(taught.notes) == 1
    assert "learned from the catalog's labels" in taught.notes[0]
    assert "optimistic" in taught.notes[0]


def _photo(name: str) -> Image.Image:
    return next(p.image for p in bundled_photos() if p.name == name)


def write_holidays(folder: Path) -> None:
    """Three groups: an original (the query) and its mirrored, smaller copy."""
    folder.mkdir(parents=True)
    for group, name in enumerate(["astronaut", "coffee", "rocket"]):
        image = _photo(name)
        image.save(folder / f"1{group:03d}00.jpg")
        ImageOps.mirror(image).resize((200, 150)).save(folder / f"1{group:03d}01.jpg")


def write_revisited(folder: Path) -> None:
    """Gallery: chelsea, coffee, astronaut, china; queries: a crop of chelsea (easy 0, hard 1
    junk 3) and of china (easy 3)."""
    names = ["chelsea", "coffee", "astronaut", "china"]
    (folder / "jpg").mkdir(parents=True)
    for name in names:
        _photo(name).save(folder / "jpg" / f"g_{name}.jpg")
        _photo(name).save(folder / "jpg" / f"q_{name}.jpg")
    gnd = [{"easy": [0], "hard": [], "junk": [1], "bbx": [20.0, 20.0, 400.0, 280.0]},
           {"easy": [3], "hard": [], "junk": [], "bbx": [0.0, 0.0, 300.0, 300.0]}]
    content = {"imlist": [f"g_{n}" for n in names], "qimlist": ["q_chelsea", "q_china"],
               "gnd": gnd}
    (folder / "gnd_roxford5k.pkl").write_bytes(pickle.dumps(content))


@pytest.mark.slow
def test_holidays_and_revisited_files_from_a_folder(runtime: Runtime, tmp_path: Path) -> None:
    write_holidays(tmp_path / "holidays")
    write_revisited(tmp_path / "oxford")
    holidays = evaluate(runtime, space_name="gap", benchmark="holidays",
                        data=tmp_path / "holidays")
    oxford = evaluate(runtime, space_name="rmac", benchmark="roxford5k",
                      data=tmp_path / "oxford", protocol="easy")
    assert (holidays.queries, holidays.gallery, holidays.map) == (3, 6, pytest.approx(1.0))
    assert (oxford.queries, oxford.gallery, oxford.map) == (2, 4, pytest.approx(1.0))
    plot = tmp_path / "pr.png"
    plot_pr_curves([holidays, oxford], plot)
    with Image.open(plot) as image:
        assert image.format == "PNG" and image.width > 300


@pytest.mark.slow
@pytest.mark.integration
def test_the_evaluate_command_compares_two_spaces(
        tmp_path: Path, lookalike_in_process: InProcessCli) -> None:
    """The comparison is a real `lookalike` subprocess (its stdout is the JSON alone); the
    set-up and the refusal go through the command's entry point in this process."""
    home = tmp_path / "home"
    write_holidays(tmp_path / "holidays")
    lookalike_in_process(home, "init")
    lookalike_in_process(home, "spaces", "create", "a", "--default")
    lookalike_in_process(home, "spaces", "create", "b", "--pooling", "gem", "--qe")
    out = lookalike(home, "evaluate", "--benchmark", "holidays", "--data",
                    str(tmp_path / "holidays"), "--space", "a", "--space", "b", "--json",
                    "--plot", str(tmp_path / "pr.png")).stdout
    results = json.loads(out)
    assert [(r["space"], r["qe"]) for r in results] == [("a", False), ("b", True)]
    assert all(0.5 < r["map"] <= 1 and r["precision"]["1"] >= 0 for r in results)
    assert (tmp_path / "pr.png").stat().st_size > 1000
    failed = lookalike_in_process(home, "evaluate", "--benchmark", "roxford5k", check=False)
    assert failed.returncode == 1 and "--data DIR" in failed.stderr
