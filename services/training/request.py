"""What a fine-tuning job trains and how: the job's parameters, checked once at submit time."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from lookalike.retrieval.models.specs import DEFAULT_BACKBONE
from lookalike.retrieval.training.augment import TRANSFORMS
from lookalike.services.requestbody import RequestBody


class FinetuneRequest(RequestBody):
    """A fine-tuning job: `head` trains a small network on a space's cached vectors (no image
    is decoded); `backbone` trains a registry network (pretrained, from scratch or from a
    given file) on the stored images with augmentation; `self-supervised` trains a registry
    network for copy detection without labels (SSCD: each stored image is its own class, two
    copy-edited views of it must match under InfoNCE + KoLeo, GeM pooling)."""

    space: str = Field(min_length=1, max_length=100, description="name of the new space")
    method: Literal["head", "backbone", "self-supervised"] = "head"
    base_space: str | None = Field(None, description="head: whose vectors; default: the default")
    backbone: str = Field(DEFAULT_BACKBONE, description="backbone: registry name")
    weights: str = Field("pretrained", description="backbone: 'pretrained', 'none' or a file")
    frozen_blocks: int = Field(0, ge=0, le=1000, description="backbone: leading blocks left frozen")
    pooling: Literal["gem", "gap"] = "gem"
    loss: Literal["softmax", "contrastive", "triplet", "sscd"] = "triplet"
    margin: float = Field(0.2, gt=0, le=10)
    out_dim: int | None = Field(None, ge=2, le=4096,
                                description="projection size; none: no projection")
    hidden: int | None = Field(None, ge=2, le=8192, description="one hidden layer of this width")
    epochs: int = Field(10, ge=1, le=1000)
    batch_size: int = Field(64, ge=4, le=1024)
    classes_per_batch: int = Field(8, ge=2, le=1024)
    lr: float = Field(1e-3, gt=0, le=10)
    weight_decay: float = Field(1e-4, ge=0, le=1)
    augment: list[str] = Field(default_factory=lambda: ["mirror", "random_crop"],
                               max_length=32)
    bf16: bool | None = Field(None, description="bfloat16 autocast; unset: where the CPU has it")
    collection: str | None = Field(None, description="learn from this collection's labels only")
    limit: int | None = Field(None, ge=8, le=100_000_000,
                              description="at most this many labelled images")
    input_size: int | None = Field(None, ge=16, le=1024,
                                   description="backbone/self-supervised: training and space "
                                               "input size; unset: the backbone's")
    val_fraction: float = Field(0.1, gt=0, lt=1)
    seed: int = Field(0, ge=0, le=2**32 - 1)

    @model_validator(mode="after")
    def _check(self) -> FinetuneRequest:
        unknown = sorted(set(self.augment) - set(TRANSFORMS))
        if unknown:
            raise ValueError(f"unknown augmentation {', '.join(unknown)}; available: "
                             f"{', '.join(sorted(TRANSFORMS))}")
        if self.method == "self-supervised":
            self.loss, self.pooling, self.augment = "sscd", "gem", []
        elif self.loss == "sscd":
            raise ValueError("the sscd loss needs two copy views per image: use method "
                             "'self-supervised' (it sets the loss itself)")
        if self.method == "head" and self.out_dim is None:
            self.out_dim = 128
        if self.method == "head" and self.input_size is not None:
            raise ValueError("input_size applies to methods 'backbone' and 'self-supervised'; "
                             "a head learns on the base space's vectors")
        if self.method == "head" and self.weights != "pretrained":
            raise ValueError("weights apply to method 'backbone'; a head learns on the base "
                             "space's vectors")
        return self
