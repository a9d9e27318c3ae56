"""ZFNet and Network-in-Network: the textbook's two networks torchvision has no builder for.

Both follow torchvision's layout (a `features` sequence ending in the descriptor map, then a
`classifier`), so the registry cuts them with the same trunk function as AlexNet and VGG.
Neither has published ImageNet weights in any package or model zoo: they are trained here.
"""

from __future__ import annotations

import torch
from torch import nn

ZFNET_DIM = 256
NIN_DIM = 1024


class ResponseNorm(nn.LocalResponseNorm):
    """Local response normalisation over 5 channels, computed in float32: torch's CPU kernel
    (an average pool in 3-D) has no bfloat16 version, and the embedder runs bf16 where the
    CPU does."""

    def __init__(self) -> None:
        super().__init__(5)

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        """The normalised maps, in the input's dtype."""
        return super().forward(maps.float()).to(maps.dtype)


class ZFNet(nn.Module):
    """Zeiler & Fergus (2013): AlexNet with a 7x7 stride-2 first layer (instead of 11x11
    stride 4) and a stride-2 second layer, which keep finer detail in the first maps.

    `small=True` is the 28-64 px variant: a 3x3 stride-1 first layer and a stride-1 second
    layer, so a 32 px input ends in a 3x3 map instead of nothing.
    """

    def __init__(self, classes: int = 1000, *, small: bool = False) -> None:
        super().__init__()
        first = nn.Conv2d(3, 96, 3, stride=1, padding=1) if small else nn.Conv2d(
            3, 96, 7, stride=2, padding=1)
        second = nn.Conv2d(96, 256, 5, stride=1 if small else 2, padding=2 if small else 0)
        self.features = nn.Sequential(
            first, nn.ReLU(inplace=True), nn.MaxPool2d(3, stride=2),
            ResponseNorm(),
            second, nn.ReLU(inplace=True), nn.MaxPool2d(3, stride=2),
            ResponseNorm(),
            nn.Conv2d(256, 384, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(384, 384, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(384, ZFNET_DIM, 3, padding=1), nn.ReLU(inplace=True),
            nn.MaxPool2d(3, stride=2),
        )
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = nn.Sequential(
            nn.Dropout(0.5), nn.Linear(ZFNET_DIM * 36, 4096), nn.ReLU(inplace=True),
            nn.Dropout(0.5), nn.Linear(4096, 4096), nn.ReLU(inplace=True),
            nn.Linear(4096, classes),
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(N,3,H,W) normalised images to (N,classes) logits."""
        pooled = self.avgpool(self.features(images))
        logits: torch.Tensor = self.classifier(pooled.flatten(1))
        return logits


def mlpconv(inputs: int, outputs: int, kernel: int, *, stride: int = 1,
            padding: int = 0) -> nn.Sequential:
    """One mlpconv block of Lin, Chen & Yan (2014): a spatial convolution followed by two 1x1
    convolutions, i.e. a small per-pixel MLP sliding over the map."""
    return nn.Sequential(
        nn.Conv2d(inputs, outputs, kernel, stride=stride, padding=padding), nn.ReLU(inplace=True),
        nn.Conv2d(outputs, outputs, 1), nn.ReLU(inplace=True),
        nn.Conv2d(outputs, outputs, 1), nn.ReLU(inplace=True),
    )


class NiN(nn.Module):
    """Network in Network on AlexNet's grid: four mlpconv blocks; the classifier is a 1x1
    convolution to one map per class and global average pooling, no fully connected layer.

    `features` ends with the fourth block's 1024-channel map (the descriptor). `small=True`
    is the paper's CIFAR-style first layer, 5x5 stride 1 (instead of 11x11 stride 4): a 32 px
    input ends in a 3x3 map.
    """

    def __init__(self, classes: int = 1000, *, small: bool = False) -> None:
        super().__init__()
        first = mlpconv(3, 96, 5, padding=2) if small else mlpconv(3, 96, 11, stride=4)
        self.features = nn.Sequential(
            first, nn.MaxPool2d(3, stride=2),
            mlpconv(96, 256, 5, padding=2), nn.MaxPool2d(3, stride=2),
            mlpconv(256, 384, 3, padding=1), nn.MaxPool2d(3, stride=2),
            nn.Dropout(0.5),
            mlpconv(384, NIN_DIM, 3, padding=1),
        )
        self.classifier = nn.Sequential(
            nn.Conv2d(NIN_DIM, classes, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten())

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(N,3,H,W) normalised images to (N,classes) logits (the class maps' averages)."""
        logits: torch.Tensor = self.classifier(self.features(images))
        return logits
