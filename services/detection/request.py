"""What a detector training job is asked to do: data, network, schedule, held-out set."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from lookalike.retrieval.detection.networks import TWO_STAGES

Architecture = Literal["fcos", "fasterrcnn", "localizer", "fcos-namer",
                       "fcos-mobilenet-namer"]


class DetectTrainRequest(BaseModel):
    """A `detect-train` job: train `architecture` on a COCO file and publish it as `name`.

    `localizer` is the one-object localization head (class + box of the first annotation of
    each image); `fcos` and `fasterrcnn` are torchvision detectors; `fcos-namer` and
    `fcos-mobilenet-namer` train a class-agnostic FCOS for `epochs`, then a crop namer (small,
    or the pretrained trunk) for `namer_epochs`, on the COCO file's boxes or, with
    `namer_scenes`, on that many freshly generated scenes each epoch. With `val_coco`,
    the published file records held-out figures (COCO mAP, or IoU and accuracy)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, max_length=63)
    coco: str
    images: str
    architecture: Architecture = "fcos"
    size: int = Field(320, ge=32, le=1024)
    epochs: int = Field(10, ge=1, le=500)
    namer_epochs: int = Field(10, ge=1, le=500)
    namer_scenes: int = Field(0, ge=0, le=100_000)
    batch_size: int = Field(8, ge=1, le=256)
    lr: float = Field(2e-3, gt=0, le=1)
    seed: int = 0
    val_coco: str | None = None
    val_images: str | None = None

    @property
    def total_epochs(self) -> int:
        """Epochs the job runs: the finder's and then the namer's for a two-stage one."""
        return self.epochs + (self.namer_epochs if self.architecture in TWO_STAGES else 0)
