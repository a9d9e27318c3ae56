"""What a text-CNN training job is asked to do: one validated shape for the CLI, the API and
the job itself."""

from __future__ import annotations

from pydantic import Field, model_validator

from lookalike.retrieval.text.training import TextTrainSettings
from lookalike.services.requestbody import RequestBody


class TextTrainRequest(RequestBody):
    """Train topic classifier NAME on a corpus folder/CSV (`source`) or on the catalog's
    captions labelled by the images' labels (`from_catalog`)."""

    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._-]+$")
    source: str | None = Field(None, description="a folder of CLASS/*.txt or a .csv "
                               "(text,label) on the server")
    from_catalog: bool = Field(False, description="captions of catalogued images, labelled "
                               "by their label")
    collection: str | None = Field(None, description="from_catalog: this collection only")
    limit: int | None = Field(None, ge=10, description="at most this many texts (stratified)")
    val_fraction: float = Field(0.2, gt=0, lt=0.9)
    epochs: int = Field(8, ge=1, le=200)
    batch_size: int = Field(32, ge=2, le=1024)
    lr: float = Field(5e-3, gt=0, le=1)
    max_length: int = Field(256, ge=8, le=4096)
    vocab_size: int = Field(10_000, ge=100, le=200_000)
    embed_dim: int = Field(64, ge=4, le=1024)
    channels: int = Field(64, ge=1, le=1024)
    widths: list[int] = Field(default_factory=lambda: [3, 4, 5], min_length=1, max_length=8)
    dropout: float = Field(0.5, ge=0, lt=1)
    seed: int = Field(0, ge=0)
    make_default: bool = Field(True, description="give captions topics with this model")

    @model_validator(mode="after")
    def _one_source(self) -> TextTrainRequest:
        if (self.source is None) == (not self.from_catalog):
            raise ValueError("give exactly one of 'source' (a folder or CSV) and "
                             "'from_catalog': true")
        return self

    def settings(self) -> TextTrainSettings:
        return TextTrainSettings(
            vocab_size=self.vocab_size, max_length=self.max_length, embed_dim=self.embed_dim,
            widths=tuple(self.widths), channels=self.channels, dropout=self.dropout,
            epochs=self.epochs, batch_size=self.batch_size, lr=self.lr, seed=self.seed)
