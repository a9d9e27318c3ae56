"""Typed exceptions raised by the retrieval library; the service edge translates them once."""

from __future__ import annotations


class LookalikeError(Exception):
    """Base of every error the library raises on purpose."""


class ImageRejected(LookalikeError):
    """Bytes that cannot be used as an image; `kind` says why in one machine-readable word.

    Kinds: empty, too_many_bytes, not_an_image, unsupported_format, truncated,
    too_many_pixels, decode_failed.
    """

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


class UnknownBackbone(LookalikeError):
    """A backbone name that is not in the registry."""


class WeightsNotFound(LookalikeError):
    """No weight file for a backbone in any of the places the registry looks."""

    def __init__(self, backbone: str, searched: list[str], *, reason: str | None = None) -> None:
        places = "\n  ".join(searched)
        super().__init__(
            reason
            or f"no weights for backbone '{backbone}'; looked in:\n  {places}\n"
            "install a weight file with `lookalike weights install FILE --backbone "
            f"{backbone}` or pass --weights FILE"
        )
        self.backbone = backbone
        self.searched = searched


class WeightsMismatch(LookalikeError):
    """A weight file whose checksum differs from the one the registry or a space expects."""


class IndexShapeError(LookalikeError):
    """Vectors or ids whose dtype or shape do not match the index contract."""


class IndexCorrupt(LookalikeError):
    """An index file whose checksum or manifest does not match: it is never loaded."""


class IndexReadOnly(LookalikeError):
    """A write to an index mapped from a snapshot file; its changes belong in a delta index."""


class EngineUnavailable(LookalikeError):
    """An inference engine that is unknown or not installed here."""


class UnknownPooling(LookalikeError, ValueError):
    """A pooling method name that the pooling module does not implement."""


class IndexNotTrained(LookalikeError):
    """An index that needs training (IVF, PQ, OPQ) used before `train`, or trained on too few."""


class IndexIdNotFound(LookalikeError, KeyError):
    """An id that is not live in the index (never added, or removed)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class InvalidIndexFactory(LookalikeError, ValueError):
    """A FAISS index_factory string that FAISS rejects or that the wrapper does not support."""


class InvalidSearchParameter(LookalikeError, ValueError):
    """A search parameter (k, nprobe, efSearch, ...) the index does not accept."""


class IndexTrainingError(LookalikeError):
    """Training that cannot work: too few vectors, or an index that already holds rows."""


class ArrayShapeError(LookalikeError, ValueError):
    """Arrays given to evaluation, whitening or query expansion whose shapes do not agree."""


class GroundTruthNotFound(LookalikeError, FileNotFoundError):
    """A benchmark ground-truth file or image folder that is not where it was looked for."""


class GroundTruthMalformed(LookalikeError, ValueError):
    """A benchmark ground-truth file that exists but does not have the expected layout."""


class UnknownProtocol(LookalikeError, ValueError):
    """An evaluation protocol name that the benchmark does not define."""


class WhiteningError(LookalikeError, ValueError):
    """A whitening that cannot be learned (dimension too large) or stored bytes that are bad."""


class UnknownTransform(LookalikeError, ValueError):
    """An augmentation name that the augment module does not implement."""


class EvaluationError(LookalikeError, ValueError):
    """Evaluation inputs that cannot give a score: k <= 0, no query with a relevant item, ..."""


class InvalidTransformParameter(LookalikeError, ValueError):
    """An augmentation parameter outside its allowed range (crop fraction, quality, factor)."""


class InvalidTrainingConfig(LookalikeError, ValueError):
    """Training settings that cannot work: unknown loss, too few classes per batch, ..."""


class TrainingStopped(LookalikeError):
    """Training stopped on request between batches; the last full epoch's checkpoint stays."""


class CheckpointCorrupt(LookalikeError):
    """A training checkpoint file that cannot be read: it is never half-loaded."""


class CheckpointMismatch(LookalikeError, ValueError):
    """A checkpoint written by another model or another training configuration."""


class HeadNotFound(LookalikeError, FileNotFoundError):
    """A projection head weight file that does not exist."""


class VideoRejected(LookalikeError):
    """Bytes that cannot be used as a video; `kind` says why in one machine-readable word.

    Kinds: empty, too_many_bytes, not_a_video, unsupported_format, no_video_stream, too_long,
    too_many_pixels, too_many_frames, truncated, decode_failed.
    """

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


class CocoFormatError(LookalikeError, ValueError):
    """A COCO annotation file that is not valid JSON or lacks the detection fields."""


class InvalidBox(LookalikeError, ValueError):
    """A box that is not four numbers inside its image with x0 < x1 and y0 < y1."""
