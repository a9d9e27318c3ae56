"""Two video classifiers behind one interface, both taking uint8 clips (N, T, H, W, 3):

- `Conv3dNet`, a small C3D-style network: 3-D convolutions over (time, height, width), so
  it sees the order of frames and hence the direction of a motion;
- `FrameAveraging`, the baseline: a 2-D frame encoder (any network mapping images to
  features, e.g. an ImageNet backbone) and a linear head applied to every frame, the
  logits averaged over the clip, which throws time away.
"""

from __future__ import annotations

import torch
from torch import nn

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def clip_tensor(clips: torch.Tensor) -> torch.Tensor:
    """uint8 (N, T, H, W, 3) to normalised float (N, 3, T, H, W)."""
    x = clips.permute(0, 4, 1, 2, 3).float() / 255.0
    mean = torch.tensor(MEAN).view(1, 3, 1, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1, 1)
    return (x - mean) / std


def _block(inputs: int, outputs: int, pool: tuple[int, int, int]) -> nn.Sequential:
    return nn.Sequential(nn.Conv3d(inputs, outputs, 3, padding=1, bias=False),
                         nn.BatchNorm3d(outputs), nn.ReLU(inplace=True), nn.MaxPool3d(pool))


class Conv3dNet(nn.Module):
    """C3D-style: three 3x3x3 convolution blocks (pooling space first, then time), global
    average pooling, one linear layer."""

    def __init__(self, classes: int, width: int = 16) -> None:
        super().__init__()
        self.features = nn.Sequential(
            _block(3, width, (1, 2, 2)), _block(width, 2 * width, (2, 2, 2)),
            _block(2 * width, 4 * width, (2, 2, 2)), nn.AdaptiveAvgPool3d(1), nn.Flatten())
        self.head = nn.Linear(4 * width, classes)

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        """Logits (N, classes) of uint8 clips (N, T, H, W, 3)."""
        result: torch.Tensor = self.head(self.features(clip_tensor(clips)))
        return result


class FrameAveraging(nn.Module):
    """A frame encoder and a linear head on every frame; logits averaged over time.

    A frozen encoder (`train_encoder=False`) stays in eval mode even while the head trains:
    its BatchNorm layers keep the statistics they came with instead of drifting to each
    batch's, so its features are the same in training and at inference (and may be computed
    once, see `frame_features`)."""

    def __init__(self, encoder: nn.Module, features: int, classes: int,
                 train_encoder: bool = True) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(features, classes)
        self.train_encoder = train_encoder
        for parameter in encoder.parameters():
            parameter.requires_grad_(train_encoder)

    def train(self, mode: bool = True) -> FrameAveraging:
        super().train(mode)
        if not self.train_encoder:
            self.encoder.eval()
        return self

    def frame_features(self, clips: torch.Tensor) -> torch.Tensor:
        """Features (N, T, F) of every frame of uint8 clips (N, T, H, W, 3); without
        gradients when the encoder is frozen."""
        n, _, t, h, w = (x := clip_tensor(clips)).shape
        frames = x.permute(0, 2, 1, 3, 4).reshape(n * t, 3, h, w)
        with torch.set_grad_enabled(self.train_encoder and torch.is_grad_enabled()):
            features: torch.Tensor = self.encoder(frames)
        return features.view(n, t, -1)

    def classify_features(self, features: torch.Tensor) -> torch.Tensor:
        """Logits (N, classes) of frame features (N, T, F): the mean over T of each frame's
        logits."""
        logits: torch.Tensor = self.head(features)
        return logits.mean(dim=1)

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        """Logits (N, classes): the mean over T of each frame's logits."""
        return self.classify_features(self.frame_features(clips))


def small_frame_encoder(width: int = 16) -> tuple[nn.Module, int]:
    """A small 2-D CNN frame encoder (trained from scratch) and its feature size: the same
    depth as Conv3dNet, without the time axis."""
    def block(inputs: int, outputs: int) -> nn.Sequential:
        return nn.Sequential(nn.Conv2d(inputs, outputs, 3, padding=1, bias=False),
                             nn.BatchNorm2d(outputs), nn.ReLU(inplace=True), nn.MaxPool2d(2))
    encoder = nn.Sequential(block(3, width), block(width, 2 * width),
                            block(2 * width, 4 * width), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    return encoder, 4 * width


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
