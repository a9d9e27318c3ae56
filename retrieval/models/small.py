"""Small-input variants (28-64 px, e.g. Fashion-MNIST) of the ImageNet networks.

An ImageNet layout divides the input by 32 (ResNet, VGG, MobileNet, GoogLeNet) or more
(AlexNet, ZFNet, NiN, whose 32 px map is empty and raises): on a 32 px image it leaves a
1x1 map or nothing. Each variant changes only the first strides, as the textbook's CIFAR and
MNIST versions do, so the rest of the network (and its parameter count) stays the same:

| network | change for small inputs | 32 px descriptor map |
|---|---|---|
| alexnet | first conv 11x11/4 -> 3x3/1 | 256 x 3x3 |
| zfnet | first conv 7x7/2 -> 3x3/1, second conv stride 2 -> 1 | 256 x 3x3 |
| nin | first mlpconv 11x11/4 -> 5x5/1 | 1024 x 3x3 |
| vgg16 | last max pool removed | 512 x 2x2 |
| googlenet | first conv 7x7/2 -> 3x3/1 | 1024 x 2x2 |
| resnet18, resnet50 | stem 7x7/2 + max pool -> 3x3/1, no max pool (CIFAR ResNet) | 512/2048 x 4x4 |
| mobilenet_v2 | first conv stride 2 -> 1 | 1280 x 2x2 |
| efficientnet_lite0 | stem stride 2 -> 1 | 1280 x 2x2 |

None of them has pretrained weights: they are trained from scratch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from torch import nn

from lookalike.retrieval.models.vision import vision_models

if TYPE_CHECKING:
    import torchvision

SMALL_INPUT = 32


def alexnet_small() -> nn.Module:
    """AlexNet whose first convolution is 3x3 stride 1 (64 filters, as before)."""
    model = vision_models().alexnet(weights=None)
    model.features[0] = nn.Conv2d(3, 64, 3, stride=1, padding=1)
    return cast(nn.Module, model)


def vgg16_small() -> nn.Module:
    """VGG-16 without its fifth max pool: 32 px ends in a 2x2 map."""
    model = vision_models().vgg16(weights=None)
    model.features[-1] = nn.Identity()
    return cast(nn.Module, model)


def googlenet_small() -> nn.Module:
    """GoogLeNet (no auxiliary classifiers, inputs in [-1, 1]) with a 3x3 stride-1 stem."""
    model = vision_models().googlenet(
        weights=None, aux_logits=False, init_weights=True, transform_input=False)
    model.conv1.conv = nn.Conv2d(3, 64, 3, stride=1, padding=1, bias=False)
    return cast(nn.Module, model)


def _cifar_stem(model: torchvision.models.ResNet) -> nn.Module:
    """The CIFAR ResNet stem: a 3x3 stride-1 convolution and no max pool."""
    model.conv1 = nn.Conv2d(3, 64, 3, stride=1, padding=1, bias=False)
    model.maxpool = cast(nn.MaxPool2d, nn.Identity())
    return cast(nn.Module, model)


def resnet18_small() -> nn.Module:
    """ResNet-18 with the CIFAR stem."""
    return _cifar_stem(vision_models().resnet18(weights=None))


def resnet50_small() -> nn.Module:
    """ResNet-50 with the CIFAR stem."""
    return _cifar_stem(vision_models().resnet50(weights=None))


def mobilenet_v2_small() -> nn.Module:
    """MobileNetV2 whose first convolution has stride 1."""
    model = vision_models().mobilenet_v2(weights=None)
    model.features[0][0].stride = (1, 1)
    return cast(nn.Module, model)


def efficientnet_lite0_small() -> nn.Module:
    """EfficientNet-Lite0 whose stem convolution has stride 1 (same padding kept)."""
    from efficientnet_lite_pytorch import EfficientNet

    model = EfficientNet.from_name("efficientnet-lite0")
    stem = cast(nn.Conv2d, model._conv_stem)
    stem.stride = (1, 1)
    stem.static_padding = nn.ZeroPad2d(1)
    return cast(nn.Module, model)
