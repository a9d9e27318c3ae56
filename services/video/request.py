"""What a video-classifier training job is asked to do: one validated shape for the CLI, the
API and the job itself."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from lookalike.services.requestbody import RequestBody


class VideoTrainRequest(RequestBody):
    """Train video classifier TASK on `source`: a folder from `lookalike sample clips` (its
    TASK/train and TASK/test are used) or any folder of CLASS/clip files (a seeded share is
    held out)."""

    source: str = Field(description="a folder on the server: sample clips, or CLASS/*.mp4")
    task: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._-]+$",
                      description="the classifier's name (and the sample-clips task folder)")
    model: Literal["conv3d", "frames"] = Field(
        "conv3d", description="conv3d: the C3D-style 3-D CNN; frames: frame averaging over "
        "the frozen ImageNet MobileNetV2")
    epochs: int = Field(8, ge=1, le=200)
    batch_size: int = Field(32, ge=2, le=1024)
    lr: float = Field(3e-3, gt=0, le=1)
    frames: int = Field(8, ge=2, le=64, description="frames sampled from each clip")
    size: int = Field(32, ge=16, le=224, description="frame side in pixels")
    val_fraction: float = Field(0.2, gt=0, lt=0.9, description="held out when the folder "
                                "has no test split")
    seed: int = Field(0, ge=0)
    make_default: bool = Field(True, description="ingest labels new videos with this model")
