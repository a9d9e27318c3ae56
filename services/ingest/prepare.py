"""Per-image work done off the main process: read, validate, hash, store, model input."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from lookalike.retrieval.embedding.embedder import Embedder, Prepared, image_to_pixels
from lookalike.retrieval.errors import ImageRejected
from lookalike.retrieval.images import DecodedImage, decode_image, sha256_hex
from lookalike.services.ingest.captions import Words, embedded_words, sidecar_words
from lookalike.services.storage.files import original_path, write_original
from lookalike.services.storage.layout import DataLayout

if TYPE_CHECKING:
    from lookalike.services.runtime import Runtime


@dataclass(frozen=True)
class PrepareConfig:
    """Everything a decode worker needs; plain values so it pickles into worker processes."""

    input_size: int
    max_bytes: int
    max_pixels: int
    layout: DataLayout


def prepare_config(runtime: Runtime, embedder: Embedder) -> PrepareConfig:
    """The limits and model input size that preparing images for `embedder` needs."""
    settings = runtime.settings
    return PrepareConfig(
        input_size=embedder.input_size, max_bytes=settings.max_upload_bytes,
        max_pixels=settings.max_pixels, layout=settings.layout)


@dataclass(frozen=True)
class PreparedImage:
    """What we learnt about one image: its identity and facts, or why it cannot be used."""

    position: int
    source: str
    sha256: str | None = None
    byte_size: int | None = None
    format: str | None = None
    width: int | None = None
    height: int | None = None
    stored_path: str | None = None  # as the catalog records it: relative to the home
    error_kind: str | None = None
    error: str | None = None
    words: Words = Words()

    @property
    def ok(self) -> bool:
        return self.error is None


def decode_for_model(data: bytes, *, config: PrepareConfig) -> tuple[DecodedImage, torch.Tensor]:
    """Validate and decode bytes into the image and the model's uint8 input; raises
    ImageRejected for anything that is not a usable image."""
    size = config.input_size
    decoded = decode_image(data, max_bytes=config.max_bytes, max_pixels=config.max_pixels,
                           draft=(size, size))
    return decoded, image_to_pixels(decoded.image, size=size)


def prepare_bytes(
    data: bytes, *, position: int, source: str, config: PrepareConfig
) -> tuple[torch.Tensor | None, PreparedImage]:
    """Decode bytes, then store the original (made durable per batch by the caller, see
    storage.sync_originals); a rejection becomes the reason. Thumbnails are made on first
    request, which keeps them off the ingest hot path."""
    sha = sha256_hex(data)
    try:
        decoded, tensor = decode_for_model(data, config=config)
    except ImageRejected as rejected:
        return None, PreparedImage(position=position, source=source, sha256=sha,
                                   byte_size=len(data), error_kind=rejected.kind,
                                   error=rejected.message)
    stored = write_original(original_path(config.layout.originals, sha, decoded.format), data)
    return tensor, PreparedImage(position=position, source=source, sha256=sha,
                                 byte_size=len(data), format=decoded.format,
                                 width=decoded.width, height=decoded.height,
                                 stored_path=config.layout.stored(stored),
                                 words=embedded_words(data))


def prepare_file(job: tuple[int, str], *, config: PrepareConfig) -> Prepared:
    """Read one file with the byte limit and prepare it; every failure becomes a reason."""
    position, source = job
    try:
        size = Path(source).stat().st_size
        if size > config.max_bytes:
            return Prepared(tensor=None, payload=PreparedImage(
                position=position, source=source, byte_size=size, error_kind="too_many_bytes",
                error=f"file is {size} bytes; the limit is {config.max_bytes} "
                      "(LOOKALIKE_MAX_UPLOAD_BYTES)"))
        data = Path(source).read_bytes()
    except OSError as exc:
        return Prepared(tensor=None, payload=PreparedImage(
            position=position, source=source, error_kind="unreadable",
            error=f"cannot read file: {exc.strerror or exc}"))
    tensor, prepared = prepare_bytes(data, position=position, source=source, config=config)
    beside = sidecar_words(Path(source))
    if not beside.empty:
        prepared = dataclasses.replace(prepared, words=beside)
    return Prepared(tensor=tensor, payload=prepared)
