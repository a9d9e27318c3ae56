"""What the registry says of a backbone and of its pretrained weights: plain, frozen records
that the registry fills and the weight resolver reads (neither imports the other for them)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import nn

DEFAULT_BACKBONE = "mobilenet_v2"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class WeightsSpec:
    """One pretrained weight file: cache name, checksum prefix, offline packages, input norms.

    `pretrained=False` marks a backbone that exists only to be trained (LeNet-5): it has no
    file anywhere, so only an explicit weight file resolves. `torchvision` names the
    torchvision weights enum entry (`lookalike weights fetch` downloads it from there);
    `training_only` are key prefixes of the file that the registry's network lacks
    (GoogLeNet's auxiliary classifiers), dropped when loading.
    """

    name: str
    filename: str
    sha256_prefix: str | None
    packages: tuple[tuple[str, str], ...] = ()
    input_size: int = 224
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    pretrained: bool = True
    torchvision: str | None = None
    training_only: tuple[str, ...] = ()


@dataclass(frozen=True)
class BackboneSpec:
    """One backbone: how to build it, where to cut it, how wide its features are, its weights."""

    name: str
    description: str
    builder: Callable[[], nn.Module]
    trunk: Callable[[nn.Module], nn.Module]
    feature_layer: str
    dim: int
    weights: WeightsSpec
    # Leading modules of the trunk that the mixed-precision engine keeps in fp32: the
    # high-resolution layers, where bfloat16's rounding of small pixel differences moves
    # dark photos' vectors most. 0: the backbone has no mixed engine.
    fp32_stem: int = 0
    # Leading modules of the trunk that the int8 engine leaves unquantized, for the same
    # reason: 0 quantizes every layer.
    int8_fp32_stem: int = 0
