"""The JSON documents stored in catalog columns, as typed models: a space's options, a job's
parameters and its result. The columns read and write these models (`Document`), so every
caller gets checked fields instead of string keys, and a typo fails where it is made."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_validator
from sqlalchemy import JSON
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

from lookalike.retrieval.models.engine_names import EngineName

DEFAULT_SHORTLIST = 100
LEGACY_FP32_STEM = 4  # the mixed engine's split before spaces recorded it


class _Document(BaseModel):
    model_config = ConfigDict(extra="forbid")


class HeadOptions(_Document):
    """A projection head after the backbone: its weight file, checked by sha256."""

    file: str
    sha256: str
    in_dim: int
    out_dim: int
    hidden: int | None = None


class MilvusIndexOptions(_Document):
    """A Milvus space's vector index: its type, build parameters and search parameters."""

    index_type: str = "FLAT"
    build_params: dict[str, int] = Field(default_factory=dict)
    search_params: dict[str, int] = Field(default_factory=dict)


class CopyCalibration(_Document):
    """A space's fitted "is a copy" thresholds, fitted on a labelled benchmark run for
    `target_precision`, with the precision and recall they kept. A verified result is a copy
    when its inliers reach `inlier_threshold`; with a margin, also the top result when its
    score clears the `margin_rank`-th best score by `margin_threshold`; without one (fitted
    before margins existed), any result whose score reaches `score_threshold`."""

    score_threshold: float
    inlier_threshold: int
    margin_threshold: float | None = Field(None, description="how far the top result's score "
                                           "must lie above the margin_rank-th best score")
    margin_rank: int | None = Field(None, ge=2, description="the result the margin is "
                                    "measured from (its rank, 1-based)")
    target_precision: float
    benchmark: str
    pairs: int
    precision: float
    recall: float
    precision_verified: float
    recall_verified: float
    held_out_precision: float | None = Field(None, description="the verified rule's "
                                             "precision on photos it was not fitted on")
    held_out_recall: float | None = Field(None, description="and its recall there")

    @model_validator(mode="after")
    def _margin_complete(self) -> CopyCalibration:
        if (self.margin_threshold is None) != (self.margin_rank is None):
            raise ValueError("margin_threshold and margin_rank go together: give both or "
                             "neither")
        return self


class SpaceOptions(_Document):
    """How a space's vectors are made and searched, beyond its table columns."""

    input_size: int | None = Field(None, description="model input side in pixels")
    engine: EngineName = Field(
        "torch", description="inference engine its vectors are made with (spaces created "
        "before engines existed are torch's)")
    fp32_stem: int = Field(LEGACY_FP32_STEM, ge=0, description="openvino-mixed: how many of "
                           "the trunk's first modules run in fp32 (the backbone's at creation; "
                           "spaces made before it was recorded ran 4)")
    int8_fp32_stem: int = Field(0, ge=0, description="openvino-int8: how many of the trunk's "
                                "first modules stay unquantized (the backbone's at creation; "
                                "spaces made before it was recorded quantized all: 0)")
    weights_file: str | None = Field(None, description="a trained or given weight file")
    gem_p: float = 3.0
    scales: list[float] = Field(default_factory=lambda: [1.0])
    qe: bool = False
    qe_n: int = 5
    qe_alpha: float = 3.0
    dba_n: int = 0
    dba_shortlist: int = DEFAULT_SHORTLIST
    backend: Literal["faiss", "milvus"] = Field(
        "faiss", description="where the vectors are searched: per-process FAISS replicas or "
        "a Milvus collection (LOOKALIKE_MILVUS_URI)")
    milvus_index: MilvusIndexOptions = Field(default_factory=MilvusIndexOptions)
    index_factory: str = "Flat"
    search_params: dict[str, int | bool] = Field(default_factory=dict)
    whitening_sha256: str | None = None
    whitening_method: Literal["pca", "learned"] | None = None
    whitening_fitted_on: int | None = None
    whitening_from: str | None = Field(None, description="a folder, or 'catalog'")
    whitening_labels: int | None = None
    head: HeadOptions | None = None
    trained_by_job: int | None = None
    verify: bool = Field(False, description="re-rank by local-feature inliers by default")
    verify_n: int = Field(20, ge=1, le=200, description="top candidates verified")
    copy_calibration: CopyCalibration | None = None
    regions_of: int | None = Field(
        None, description="a region space: one vector per region (its box with a context "
        "margin, cut from the original), keyed by region id, made with the backbone of the "
        "image space with this id")
    region_margin: float = Field(0.1, ge=0, le=1, description="context added on each side "
                                 "of a region's box, as a fraction of its width and height")
    region_method: Literal["crop", "roi-align"] = Field(
        "crop", description="a region's vector: its crop through the backbone, or RoIAlign "
        "on the whole image's feature map (the image squashed to region_roi_side)")
    region_roi_side: int = Field(448, ge=32, le=2048, description="roi-align: the side the "
                                 "image is squashed to before the trunk")
    region_centre: float | None = Field(
        None, gt=0, le=2, description="weight the feature map by a Gaussian of this std (a "
        "fraction of its side) centred on the region before pooling; None: uniform (region "
        "spaces are made with 0.1 since region_layer, 0.15 before it; older ones uniform)")
    region_layer: int | None = Field(
        None, ge=0, description="crop: also pool the map of this block of the trunk (an "
        "eager torch run of its blocks; MobileNetV2: 13, the last before the final "
        "downsampling), weighted alike, and append it to the region's vector; None: the last "
        "map alone (region spaces made before it existed)")

    region_rerank: int = Field(
        0, ge=0, le=100, description="scope=regions: re-rank this many best regions by how "
        "their tapped block's cells agree with the query's place by place (needs "
        "region_layer; each one's crop is cut again from its original); 0: off")
    region_shift: int = Field(
        0, ge=0, le=3, description="re-ranking: compare each region's cells with the query's "
        "moved by up to this many places each way, the best taken (a detector's box is off "
        "by a tenth of its side or so); 0: place by place (region spaces made before it)")

    @model_validator(mode="after")
    def _layer_needs_crop(self) -> SpaceOptions:
        """RoIAlign reads the last map only: a tapped block is a crop's description, and
        re-ranking compares tapped blocks."""
        if self.region_layer is not None and self.region_method != "crop":
            raise ValueError("region_layer describes crops; region_method "
                             f"'{self.region_method}' cannot tap a block")
        if self.region_rerank and self.region_layer is None:
            raise ValueError("region_rerank compares the tapped block's cells: it needs "
                             "region_layer")
        return self


class IngestParams(_Document):
    """An ingest job: (path or URL, label) items, or (path or URL, label, title, caption)
    when a CSV or URL list gave it words, cut into batches of `batch_size`."""

    source: Literal["paths", "urls"]
    items: list[tuple[str, str | None] | tuple[str, str | None, str | None, str | None]]
    batch_size: int
    collection: str | None = None
    detect: str | None = Field(None, description="the detector run on each batch's images "
                               "(asked for, or the collection's default when submitted)")


class ReindexParams(_Document):
    """A reindex job: pages of image ids (first, last) to embed into `space`."""

    space: str
    batch_size: int
    pages: list[tuple[int, int]]
    batch_sizes: list[int]


class FinetuneParams(_Document):
    """A fine-tuning job: its request (training.request.FinetuneRequest) and one batch per
    epoch."""

    request: dict[str, Any]
    batch_sizes: list[int]


class TextTrainParams(_Document):
    """A text-CNN training job: its request (text.request.TextTrainRequest) and one batch
    per epoch."""

    text_request: dict[str, Any]
    batch_sizes: list[int]


class VideoTrainParams(_Document):
    """A video-classifier training job: its request (video.request.VideoTrainRequest) and
    one batch per epoch."""

    video_request: dict[str, Any]
    batch_sizes: list[int]


class TextApplyParams(_Document):
    """A text-apply job: pages of captioned image ids (first, last) given topics by
    `text_model`, the default text model when the job was submitted."""

    text_model: str
    batch_size: int
    pages: list[tuple[int, int]]
    batch_sizes: list[int]


class TopPatchesParams(_Document):
    """A top-patches job: one pass over the first `limit` catalog images through `space`'s
    backbone, ranking them by channel `channel` of trunk block `layer`."""

    space: str
    layer: int
    channel: int
    limit: int
    batch_sizes: list[int] = [1]  # one batch, one unit of progress


class DetectTrainParams(_Document):
    """A detector training job: its request (detection.request.DetectTrainRequest) and one
    batch per epoch."""

    detect_request: dict[str, Any]
    batch_sizes: list[int]


class DetectRunParams(_Document):
    """A detect job: pages of image ids (first, last) that `detector` finds regions on."""

    detector: str
    collection: str | None = None
    batch_size: int
    pages: list[tuple[int, int]]
    batch_sizes: list[int]


class DuplicatesParams(_Document):
    """A duplicates job: the clusters of `space` at `threshold` (None: the space's calibrated
    copy score), one pass over the index in one batch."""

    space: str
    threshold: float | None = None
    batch_sizes: list[int] = [1]  # one batch, one unit of progress


JobParams = (IngestParams | ReindexParams | FinetuneParams | TextTrainParams | TextApplyParams
             | TopPatchesParams | DetectTrainParams | DetectRunParams | VideoTrainParams
             | DuplicatesParams)


class BatchOutcome(_Document):
    state: Literal["succeeded", "failed"]
    error: str | None = None
    added: int = 0
    duplicates: int = 0
    failed: int = 0
    regions: int = 0


class EpochFigures(BaseModel):
    """One epoch of a fine-tuning job: its loss and validation mAP, and any other figure."""

    model_config = ConfigDict(extra="allow")

    epoch: int
    loss: float | None = None
    val_map: float | None = None


class JobResult(_Document):
    """What a job has done so far: counts, errors, each batch's outcome, training figures."""

    added: int = 0
    duplicates: int = 0
    failed: int = 0
    regions: int = Field(0, description="regions an ingest job's detector stored")
    errors: list[str] = Field(default_factory=list)
    batches: dict[str, BatchOutcome] = Field(default_factory=dict)
    batch_count: int = 0
    history: list[EpochFigures] | None = None
    baseline_val_map: float | None = None
    train_images: int | None = None
    val_images: int | None = None
    classes: list[str] | None = None
    space: str | None = None
    weights_file: str | None = None
    weights_sha256: str | None = None
    head_file: str | None = None
    curves: str | None = None
    augmentations: str | None = Field(None, description="a self-supervised fine-tuning job's "
                                      "grid of copy-edited training views (PNG, home-relative)")
    text_model: str | None = None
    video_classifier: str | None = None
    figures: dict[str, Any] | None = None
    patches: str | None = Field(None, description="a top-patches job's PNG, home-relative")
    top: list[tuple[int, float]] | None = Field(
        None, description="a top-patches job's (image id, response), best first")
    clusters: dict[str, Any] | None = Field(
        None, description="a duplicates job's summary (space, threshold, images, clusters, "
        "extras) and its report (JSON, home-relative)")


class Document(TypeDecorator[Any]):
    """A JSON column (JSONB on PostgreSQL) read and written as a pydantic model."""

    impl = JSON
    cache_ok = True

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.model = model
        self._adapter: TypeAdapter[Any] = TypeAdapter(model)

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        json_type = JSONB() if dialect.name == "postgresql" else JSON()
        return dialect.type_descriptor(json_type)

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        return self._adapter.dump_python(self._adapter.validate_python(value), mode="json")

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        return None if value is None else self._adapter.validate_python(value)
