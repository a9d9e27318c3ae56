"""Detector jobs end to end on generated scenes in a real catalog: a short training run
raises mAP and publishes a detector; a detect job stores its boxes as regions on the
catalogued scenes; the localization head learns boxes; bad requests are refused."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from sqlalchemy import select

from lookalike.retrieval.detection.coco import CocoSet, read_coco
from lookalike.retrieval.detection.namer import PretrainedNamer, TwoStage, box_crops
from lookalike.retrieval.detection.networks import (
    TRUNK_BACKBONE,
    TWO_STAGE,
    TWO_STAGE_PRETRAINED,
    DetectorConfig,
)
from lookalike.retrieval.detection.scenes import SceneSpec
from lookalike.retrieval.detection.training import load_samples, to_tensor
from lookalike.retrieval.models.registry import get_backbone, resolve_weights
from lookalike.services.catalog.models import Image
from lookalike.services.catalog.regions import image_regions
from lookalike.services.detection import training as detect_training
from lookalike.services.detection.request import DetectTrainRequest
from lookalike.services.detection.scenes import write_scenes
from lookalike.services.detection.scoring import score_detector
from lookalike.services.detection.store import list_detectors, load_detector, new_network
from lookalike.services.errors import DetectorNotFound, InvalidRequest
from lookalike.services.jobs import runner as jobs
from lookalike.services.runtime import Runtime
from lookalike.services.setup import init_catalog, open_runtime
from tests.services.conftest import ingest_into, make_settings

pytestmark = pytest.mark.slow

NAMED_FRESH = 0.4  # a namer that saw only fresh scenes, on the file's boxes (seeded: 0.75)
SPEC = SceneSpec(size=96, min_object=24, max_object=48, max_objects=2)


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("scenes")
    write_scenes(folder, images=16, seed=3, spec=SPEC)
    return folder


@pytest.fixture()
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    settings = make_settings(tmp_path / "home")
    init_catalog(settings)
    with open_runtime(settings) as opened:
        yield opened


def _request(scenes: Path, **changes: object) -> DetectTrainRequest:
    values: dict[str, object] = {
        "name": "tiny", "coco": str(scenes / "annotations.json"), "images": str(scenes),
        "architecture": "fcos", "size": 96, "epochs": 25, "batch_size": 8, "lr": 2e-3,
        "seed": 1,
        "val_coco": str(scenes / "annotations.json"), "val_images": str(scenes)}
    return DetectTrainRequest.model_validate({**values, **changes})


def test_training_raises_map_and_a_detect_job_stores_regions(
        runtime: Runtime, scenes: Path) -> None:
    before, job = _untrained_then_trained(runtime, _request(scenes), scenes)
    assert job["state"] == "succeeded", job["error"]
    figures = job["training"]["figures"]
    history = job["training"]["history"]
    assert [h["epoch"] for h in history] == list(range(25))
    assert history[-1]["loss"] < history[0]["loss"]
    # a new detector from ImageNet features learns slowly and unevenly on 16 scenes: the bar
    # only checks that it learns
    assert before["map_50"] < 0.02 and figures["map_50"] > before["map_50"] + 0.04
    assert list_detectors(runtime.settings.layout) == ["tiny"]
    ingest_into(runtime, scenes / "images")
    run = jobs.describe(jobs.submit_detect(runtime, detector="tiny", wait=True))
    assert run["state"] == "succeeded" and run["progress"]["total"] == 16
    with runtime.read_session() as session:
        regions = [r for image_id in range(1, 17)
                   for r in image_regions(session=session, image_id=image_id)]
    assert len(regions) == run["counts"]["added"] > 0
    assert all(r.detector == "tiny" and 0 <= r.x0 < r.x1 <= 96 for r in regions)
    again = jobs.describe(jobs.submit_detect(runtime, detector="tiny", wait=True))
    assert again["counts"]["added"] == run["counts"]["added"]  # replaced, not added twice


def _untrained_then_trained(runtime: Runtime, request: DetectTrainRequest,
                            folder: Path) -> tuple[dict[str, float], dict]:
    """The seeded untrained network's figures on the request's scenes, and the job that
    trained it (waited for)."""
    torch.manual_seed(request.seed)
    trunk = resolve_weights(get_backbone(TRUNK_BACKBONE), explicit=None,
                            torch_home=runtime.settings.torch_home)
    before = score_detector(new_network(load_config(request), trunk).eval(),
                            load_config(request), folder / "annotations.json", folder)
    return before, jobs.describe(jobs.submit_detect_train(runtime, request, wait=True))


def load_config(request: DetectTrainRequest) -> DetectorConfig:
    return DetectorConfig(request.architecture, read_coco(Path(request.coco)).classes,
                          request.size)


def test_localization_head_learns_one_box_per_scene(
        runtime: Runtime, tmp_path: Path) -> None:
    folder = tmp_path / "single"
    write_scenes(folder, images=32, seed=4,
                 spec=SceneSpec(size=64, min_object=24, max_object=40, max_objects=1))
    # 1e-3, the README's localizer rate (the sigmoid box head before issue 15 saturated at
    # 3e-3 here: every box the whole image, mean IoU 0.18)
    request = _request(folder, name="loc", architecture="localizer", size=64, epochs=15,
                       batch_size=16, lr=1e-3)
    before, job = _untrained_then_trained(runtime, request, folder)
    assert job["state"] == "succeeded", job["error"]
    figures = job["training"]["figures"]
    # seeded; the bar only checks that it learns (the figures are in the README)
    assert figures["mean_iou"] > before["mean_iou"] + 0.1, (before, figures)
    model, config = load_detector(runtime.settings.layout, "loc")
    assert config.architecture == "localizer"
    assert config.classes == read_coco(folder / "annotations.json").classes


def test_a_two_stage_job_trains_its_finder_then_its_namer(
        runtime: Runtime, scenes: Path) -> None:
    request = _request(scenes, name="two", architecture=TWO_STAGE, epochs=25, namer_epochs=30)
    before, job = _untrained_then_trained(runtime, request, scenes)
    assert job["state"] == "succeeded", job["error"]
    history = job["training"]["history"]
    assert [h["epoch"] for h in history] == list(range(55))
    assert history[24]["loss"] < history[0]["loss"]  # the finder's epochs
    assert history[-1]["loss"] < history[25]["loss"] / 2  # the namer's
    figures = job["training"]["figures"]
    assert figures["agnostic_map_50"] > before["agnostic_map_50"] + 0.04, (before, figures)
    model, config = load_detector(runtime.settings.layout, "two")
    assert isinstance(model, TwoStage)
    coco = read_coco(scenes / "annotations.json")
    assert config.classes == coco.classes
    # the training scenes' own boxes: the namer fits them (chance is 1 in the class count)
    assert _named_share(model, coco, scenes, request.size) > 0.6


def test_a_pretrained_namer_job_publishes_the_fine_tuned_trunk_as_its_namer(
        runtime: Runtime, scenes: Path) -> None:
    request = _request(scenes, name="mobile", architecture=TWO_STAGE_PRETRAINED, epochs=1,
                       namer_epochs=20, val_coco=None, val_images=None)
    job = jobs.describe(jobs.submit_detect_train(runtime, request, wait=True))
    assert job["state"] == "succeeded", job["error"]
    history = job["training"]["history"]
    assert [h["epoch"] for h in history] == list(range(21))
    assert history[-1]["loss"] < history[1]["loss"] / 2  # the namer's epochs
    model, config = load_detector(runtime.settings.layout, "mobile")
    assert config.architecture == TWO_STAGE_PRETRAINED
    assert isinstance(model, TwoStage) and isinstance(model.namer, PretrainedNamer)
    coco = read_coco(scenes / "annotations.json")
    assert _named_share(model, coco, scenes, request.size) > 0.6


def test_a_namer_can_learn_from_scenes_drawn_afresh_each_epoch(
        runtime: Runtime, scenes: Path) -> None:
    request = _request(scenes, name="fresh", architecture=TWO_STAGE_PRETRAINED, epochs=1,
                       namer_epochs=10, namer_scenes=64, val_coco=None, val_images=None)
    job = jobs.describe(jobs.submit_detect_train(runtime, request, wait=True))
    assert job["state"] == "succeeded", job["error"]
    assert [h["epoch"] for h in job["training"]["history"]] == list(range(11))
    model, _ = load_detector(runtime.settings.layout, "fresh")
    assert isinstance(model, TwoStage)
    # the file's scenes are not among the namer's: it names boxes it never saw (chance 1/20)
    assert _named_share(model, read_coco(scenes / "annotations.json"), scenes,
                        request.size) > NAMED_FRESH


def _named_share(model: TwoStage, coco: CocoSet, folder: Path, size: int) -> float:
    """The share of the scenes' true boxes that the detector's namer names right."""
    samples = load_samples(coco, folder, size=size)
    with torch.no_grad():
        named = [model.namer(box_crops(to_tensor(s.pixels), torch.from_numpy(s.boxes),
                                       model.namer.side)).argmax(dim=1) + 1 for s in samples]
    truth = torch.cat([torch.from_numpy(s.labels) for s in samples])
    return float((torch.cat(named) == truth).float().mean())


def test_a_jobs_epochs_read_its_images_once_and_let_them_go_when_it_publishes(
        runtime: Runtime, scenes: Path) -> None:
    request = _request(scenes, name="once", epochs=3, val_coco=None, val_images=None)
    job = detect_training.create_train_job(runtime, request)
    detect_training._job_samples.cache_clear()
    for epoch in range(2):
        detect_training.run_train_epoch(runtime, job, epoch)
    reads = detect_training._job_samples.cache_info()
    assert (reads.misses, reads.hits, reads.currsize) == (1, 1, 1)
    detect_training.run_train_epoch(runtime, job, 2)
    assert detect_training._job_samples.cache_info().currsize == 0
    assert list_detectors(runtime.settings.layout) == ["once"]


def test_bad_requests_are_refused_before_any_job(runtime: Runtime, scenes: Path,
                                                tmp_path: Path) -> None:
    with pytest.raises(InvalidRequest, match="not allowed"):
        jobs.submit_detect_train(runtime, _request(scenes, name="User Boxes"))
    with pytest.raises(InvalidRequest, match="does not exist"):
        jobs.submit_detect_train(runtime, _request(scenes, coco="/nowhere/a.json"))
    with pytest.raises(InvalidRequest, match="fcos has none"):
        jobs.submit_detect_train(runtime, _request(scenes, namer_scenes=10))
    fashion_only = tmp_path / "fashion.json"
    document = json.loads((scenes / "annotations.json").read_text())
    document["categories"] = document["categories"][:10]
    document["annotations"] = [a for a in document["annotations"] if a["category_id"] <= 10]
    fashion_only.write_text(json.dumps(document))
    with pytest.raises(InvalidRequest, match="omit namer_scenes"):
        jobs.submit_detect_train(runtime, _request(scenes, coco=str(fashion_only),
                                                   architecture=TWO_STAGE, namer_scenes=10))
    with pytest.raises(DetectorNotFound, match="lookalike detect train"):
        jobs.submit_detect(runtime, detector="missing")


def test_a_faces_job_boxes_the_portraits_of_the_catalog(photo_home: Runtime) -> None:
    run = jobs.describe(jobs.submit_detect(photo_home, detector="faces", wait=True))
    assert run["state"] == "succeeded", run["errors"]
    with photo_home.read_session() as session:
        boxed = {Path(image.source_uri).stem for image in session.scalars(select(Image))
                 if image_regions(session=session, image_id=image.id)}
    assert boxed == {"astronaut", "camera", "grace_hopper"} and run["counts"]["added"] == 3
