"""LeNet-5 for small grey images (digits, Fashion-MNIST): a backbone trained from scratch.

The classic layout (LeCun et al. 1998) with ReLU and max pooling: two 5x5 convolutions on a
32x32 input, then 120 and 84 units. It takes the registry's (N,3,32,32) normalised input,
averages the channels to grey inside, and its trunk ends in an (N,84,1,1) map, so every
pooling method of `retrieval.pooling` applies to it as to a convolutional backbone.
"""

from __future__ import annotations

import torch
from torch import nn

INPUT_SIZE = 32
EMBEDDING_DIM = 84


class Grey(nn.Module):
    """(N,3,H,W) to (N,1,H,W) by the mean of the channels (grey images have equal channels)."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Channel mean, keeping the channel axis."""
        return images.mean(dim=1, keepdim=True)


class AsMap(nn.Module):
    """(N,C) to (N,C,1,1): a vector seen as a one-pixel feature map."""

    def forward(self, vectors: torch.Tensor) -> torch.Tensor:
        """Add two unit spatial axes."""
        return vectors[:, :, None, None]


class LeNet5(nn.Module):
    """LeNet-5: `features` (four blocks: two conv stages, two dense stages) and `classifier`."""

    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Sequential(Grey(), nn.Conv2d(1, 6, 5), nn.ReLU(), nn.MaxPool2d(2)),
            nn.Sequential(nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2)),
            nn.Sequential(nn.Flatten(), nn.Linear(16 * 5 * 5, 120), nn.ReLU()),
            nn.Sequential(nn.Linear(120, EMBEDDING_DIM), nn.ReLU(), AsMap()),
        )
        self.classifier = nn.Linear(EMBEDDING_DIM, classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(N,3,32,32) normalised images to (N,classes) logits."""
        logits: torch.Tensor = self.classifier(self.features(images).flatten(1))
        return logits


def lenet5() -> LeNet5:
    """A randomly initialised LeNet-5 with ten classes (the registry builder)."""
    return LeNet5()
