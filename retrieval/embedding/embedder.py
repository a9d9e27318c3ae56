"""Batched embedding: images to L2-normalised float32 vectors, with decoding overlapped.

`embed_stream` runs the caller's `prepare` (read, decode, resize, to tensor) in DataLoader
worker processes while the main process runs the model, so decoding hides behind inference;
or, with `embed_in_workers`, each worker also runs the model on the batches it decoded, so
every core does both and none waits on the other.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import logging
import operator
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from lookalike.retrieval.embedding.fork_gate import ForkGate, start_method
from lookalike.retrieval.embedding.pooling import POOLING_METHODS, pool
from lookalike.retrieval.embedding.whitening import PCAWhitening
from lookalike.retrieval.embedding.whitening import apply as apply_whitening
from lookalike.retrieval.errors import UnknownPooling
from lookalike.retrieval.models.engines import OpenVinoTrunk
from lookalike.retrieval.models.graph import fold_batch_norm, freeze_graph
from lookalike.retrieval.models.registry import BackboneSpec

if TYPE_CHECKING:
    from lookalike.retrieval.training.heads import ProjectionHead

logger = logging.getLogger(__name__)

T = TypeVar("T")
_PREFETCH_FACTOR = 2
_REDUCING_GAP = 2.0


@dataclass(frozen=True)
class EmbedderOptions:
    """How to run the model: batch size, decode workers, memory format, precision, pooling.

    channels_last speeds up convolutions on CPUs; bf16 (the model's weights and activations in
    bfloat16, cheaper than autocast's casts on every call) pays off only where the CPU runs
    bfloat16 natively (`native_bf16`) and moves vectors by up to 1% cosine, so it is off here
    and the service turns it on where native. Torch's thread count is the process's to set
    once at its start, never an embedder's. `forward_batch` is how many images one model
    call takes: a batch of `batch_size` goes through the model in slices of that size, since
    small slices keep the activations in the CPU's cache (`lookalike bench forward` measures
    each size). `frozen_graph` runs the model as a frozen TorchScript graph (see
    `graph.freeze_graph`). `embed_in_workers` has each of `embed_stream`'s workers run the
    model on the batches it decodes (data parallel: on 2 cores two processes that decode and
    embed beat one that decodes beside one that embeds, which waits on it); the workers are
    forked, and a forked process keeps none of its parent's threads, so it needs a model that
    runs one thread, on the CPU. `lookalike bench ingest` measures a setting.
    """

    batch_size: int = 32
    forward_batch: int = 32
    num_workers: int = 0
    channels_last: bool = True
    bf16: bool = False
    pooling: str = "gap"
    gem_p: float = 3.0
    scales: tuple[float, ...] = (1.0,)
    frozen_graph: bool = False
    input_size: int | None = None  # side images are resized to; None: the backbone's
    embed_in_workers: bool = False


@dataclass
class Prepared:
    """What `prepare` returns for one item: its (3,S,S) tensor (None if it failed) and payload."""

    tensor: torch.Tensor | None
    payload: Any


@dataclass(frozen=True)
class PrepareFailed:
    """Payload standing in for an item whose `prepare` raised instead of reporting its error."""

    index: int
    error: str


@dataclass
class EmbeddedBatch:
    """One batch of results in input order; vectors[i] is None where the item had no tensor."""

    payloads: list[Any]
    vectors: list[np.ndarray | None]


@dataclass
class _Collated:
    """A batch from the DataLoader: payloads, stacked tensors, and which items had one; or,
    embedded in the worker, their vectors in place of the tensors."""

    payloads: list[Any]
    tensors: torch.Tensor | None
    present: list[bool]
    vectors: np.ndarray | None = None


_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})  # /proc/cpuinfo's names


def native_bf16() -> bool:
    """Whether this CPU runs bfloat16 natively (AVX-512 BF16 / AMX), where bfloat16 pays off.
    oneDNN also says it supports bfloat16 on AVX-512 CPUs without these instructions, where
    it emulates it at about half fp32's speed (TorchScript 38 against 64 images/s on an Ice
    Lake host), so the CPU's own flags decide; without /proc/cpuinfo, fp32 (the reference)."""
    return bool(torch.backends.mkldnn.is_available()
                and torch.ops.mkldnn._is_mkldnn_bf16_supported()
                and _BF16_FLAGS & cpu_flags())


_INT8_FLAGS = frozenset({"avx512_vnni", "avx_vnni", "amx_int8"})


def native_int8() -> bool:
    """Whether this CPU sums int8 products in 32 bits (VNNI or AMX). Without, oneDNN's AVX2
    int8 kernels sum pairs of products in 16 bits, which saturate, so an int8 model's vectors
    stray further from fp32's; what that costs, and what int8 buys there, `lookalike bench
    speed` prints (README, Speed)."""
    return bool(_INT8_FLAGS & cpu_flags())


@functools.cache
def cpu_flags() -> frozenset[str]:
    """The instruction-set flags Linux lists for the first CPU (empty elsewhere)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.partition(":")[2].split())
    return frozenset()


def image_to_pixels(image: Image.Image, *, size: int) -> torch.Tensor:
    """(3,size,size) uint8 tensor of an RGB image, squashed to size; the embedder normalises.

    Workers hand back uint8 rather than float: a quarter of the bytes to pass between
    processes, and the normalisation runs once per batch, vectorised, in the main process.
    The squash is bilinear with antialiasing: torch's uint8 kernel, within one level of
    Pillow's BILINEAR and faster on the 320x240 that a drafted 640x480 JPEG
    decodes to; Pillow's own for an image with a side of 2 x `_REDUCING_GAP` x size or more,
    which Pillow first reduces by a whole factor (torch's exact filter is slower there).
    """
    if image.mode != "RGB":
        image = image.convert("RGB")
    if image.size == (size, size):
        return _hwc_to_chw(image)
    if max(image.size) >= 2 * _REDUCING_GAP * size:
        return _hwc_to_chw(image.resize((size, size), Image.Resampling.BILINEAR,
                                        reducing_gap=_REDUCING_GAP))
    return torch.nn.functional.interpolate(_hwc_to_chw(image)[None], size=(size, size),
                                           mode="bilinear", antialias=True,
                                           align_corners=False)[0]


@contextlib.contextmanager
def _garbage_left_behind() -> Iterator[None]:
    """Fork worker processes that never collect the parent's uncollected garbage: a forked
    child's collector would run its finalisers, and an OpenVINO compiled model's waits on
    threads that exist only in the parent (a decode worker hung there). Frozen while the
    workers fork, the parent's objects are out of the children's collections; the parent
    collects them as before."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _hwc_to_chw(image: Image.Image) -> torch.Tensor:
    """(3,H,W) uint8 view of a copy of an RGB image's pixels (channels last in memory)."""
    return torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1)


class _PreparedItems(Dataset[Prepared], Generic[T]):
    """Map-style dataset calling `prepare` on item i; a raising `prepare` becomes a failed item."""

    def __init__(self, items: Sequence[T], prepare: Callable[[T], Prepared], size: int) -> None:
        self.items = items
        self.prepare = prepare
        self.shape = (3, size, size)
        self.expected = (self.shape, torch.uint8)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> Prepared:
        try:
            prepared = self.prepare(self.items[index])
        except Exception as error:  # one bad item must not end the stream
            return Prepared(None, PrepareFailed(index, f"{type(error).__name__}: {error}"))
        tensor = prepared.tensor
        if tensor is not None and (tuple(tensor.shape), tensor.dtype) != self.expected:
            got = f"{tuple(tensor.shape)} {tensor.dtype}"
            problem = f"prepare returned a {got} tensor, expected {self.shape} torch.uint8"
            return Prepared(None, PrepareFailed(index, problem))
        return prepared


def _collate(samples: list[Prepared]) -> _Collated:
    """Stack the tensors that exist and remember which items had one."""
    present = [sample.tensor is not None for sample in samples]
    tensors = [sample.tensor for sample in samples if sample.tensor is not None]
    stacked = torch.stack(tensors) if tensors else None
    return _Collated([sample.payload for sample in samples], stacked, present)


def _collate_embedded(embedder: Embedder, samples: list[Prepared]) -> _Collated:
    """`_collate`, then the batch's vectors, in the worker: only vectors cross to the
    main process."""
    collated = _collate(samples)
    if collated.tensors is None:
        return collated
    return _Collated(collated.payloads, None, collated.present,
                     embedder.embed_in_worker(collated.tensors))


class Embedder:
    """A feature extractor plus pooling and L2 normalisation, run in batches.

    The extractor is a torch module (run as `options` say) or a trunk an engine compiled
    (`models.engines`), which takes float32 NCHW pixels and ignores the torch options.

    Vectors go trunk -> pooling -> L2 -> whitening (optional) -> projection head (optional,
    a fine-tuned `ProjectionHead`, which L2-normalises its output).
    """

    def __init__(
        self, model: torch.nn.Module | OpenVinoTrunk, *, spec: BackboneSpec,
        options: EmbedderOptions,
        whitening: PCAWhitening | None = None, head: ProjectionHead | None = None,
    ) -> None:
        if not options.scales or any(not 0 < scale <= 4 for scale in options.scales):
            raise ValueError(f"scales must be a non-empty list in (0, 4], got {options.scales}")
        if whitening is not None and whitening.input_dim != spec.dim:
            raise ValueError(f"the whitening expects dimension {whitening.input_dim}, but "
                             f"{spec.name} gives {spec.dim}; fit it on this backbone's vectors")
        if options.pooling not in POOLING_METHODS:
            allowed = ", ".join(POOLING_METHODS)
            raise UnknownPooling(f"unknown pooling method '{options.pooling}'; allowed: {allowed}")
        if options.batch_size < 1 or options.forward_batch < 1:
            raise ValueError("batch_size and forward_batch must be at least 1, got "
                             f"{options.batch_size} and {options.forward_batch}")
        self.spec = spec
        self.options = options
        self.whitening = whitening
        base_dim = spec.dim if whitening is None else whitening.output_dim
        if head is not None and head.in_dim != base_dim:
            raise ValueError(f"the projection head expects dimension {head.in_dim}, but the "
                             f"vectors before it have {base_dim}; train it on these vectors")
        self.dim = base_dim if head is None else head.out_dim
        self.input_size = options.input_size or spec.weights.input_size
        self.model: torch.nn.Module | OpenVinoTrunk
        if isinstance(model, torch.nn.Module):
            self._use_torch(model)
        else:
            self.engine, self.model = model.engine, model
            self.device, self.dtype = torch.device("cpu"), torch.float32
            self.memory_format = torch.contiguous_format
        if options.embed_in_workers:
            self.check_forkable()
        self._warmed = False
        self._gate = ForkGate()
        self.head = None if head is None else head.eval().to(self.device)
        weights = spec.weights
        self._shift = torch.tensor(weights.mean).mul(255.0).view(1, 3, 1, 1).to(self.device)
        self._scale = torch.tensor(weights.std).mul(255.0).view(1, 3, 1, 1).to(self.device)

    def _use_torch(self, model: torch.nn.Module) -> None:
        """Run the torch module: batch norm folded, in the options' memory format and dtype,
        frozen to a TorchScript graph if asked."""
        options = self.options
        self.device = next(model.parameters()).device
        memory_format = torch.channels_last if options.channels_last else torch.contiguous_format
        self.memory_format = memory_format
        self.dtype = torch.bfloat16 if options.bf16 else torch.float32
        self.engine = f"torch {'bf16' if options.bf16 else 'fp32'}" + (
            " frozen graph" if options.frozen_graph else "")
        module: torch.nn.Module = fold_batch_norm(model.eval()).to(  # type: ignore[call-overload]
            memory_format=memory_format, dtype=self.dtype)  # torch's stubs omit memory_format
        if options.frozen_graph:
            example = torch.zeros(options.forward_batch, 3, self.input_size, self.input_size,
                                  device=self.device, dtype=self.dtype)
            module = freeze_graph(module, example.contiguous(memory_format=memory_format))
        self.model = module

    def check_forkable(self) -> None:
        """Raise unless a forked worker can run this model: workers started by fork, the
        model on the CPU, and, for an engine's compiled model (which keeps its thread count;
        torch's is set to one in a worker), compiled for one thread."""
        threads = 1 if isinstance(self.model, torch.nn.Module) else self.model.threads
        if self.device.type != "cpu" or threads != 1:
            raise ValueError("embed_in_workers needs a model that runs one thread on the CPU; "
                             f"this one runs {threads} on {self.device.type}: compile it for "
                             "one thread, or embed in the calling process")
        if start_method() != "fork":
            raise ValueError("embed_in_workers needs workers started by fork (they inherit "
                             f"the model); this process starts them by {start_method()}: "
                             "embed in the calling process")

    def to_tensor(self, image: Image.Image) -> torch.Tensor:
        """(3,S,S) uint8 pixels at this backbone's input size."""
        return image_to_pixels(image, size=self.input_size)

    def _model_inputs(self, batch: torch.Tensor) -> torch.Tensor:
        """uint8 pixels normalised with the backbone's mean and std, in the model's dtype."""
        inputs = batch.to(self.device, memory_format=self.memory_format).float()
        return inputs.sub_(self._shift).div_(self._scale).to(self.dtype)

    def embed_tensors(self, batch: torch.Tensor) -> np.ndarray:
        """(N,3,S,S) uint8 pixels to (N,D) float32, C-contiguous, unit-norm vectors."""
        with self._gate.calling():
            return self.embed_in_worker(batch)

    def embed_in_worker(self, batch: torch.Tensor) -> np.ndarray:
        """`embed_tensors` without the fork gate: for a forked worker, where no other thread
        runs and the gate is the parent's copy, caught mid-fork."""
        if batch.dim() != 4 or batch.shape[1] != 3 or batch.dtype != torch.uint8:
            raise ValueError(
                f"expected a (N,3,H,W) uint8 batch, got {tuple(batch.shape)} {batch.dtype}")
        with torch.inference_mode():
            inputs = self._model_inputs(batch)
            step = self.options.forward_batch
            pooled = torch.cat([
                functools.reduce(operator.add, (self._pooled_at(inputs[start:start + step], scale)
                                                for scale in self.options.scales))
                for start in range(0, len(inputs), step)])
        return self.finish(pooled)

    def finish(self, pooled: torch.Tensor) -> np.ndarray:
        """(N,C) pooled trunk features to this embedder's (N,D) vectors: L2, then whitening
        and the projection head when it has them (what region descriptors share with it)."""
        with torch.inference_mode():
            vectors = torch.nn.functional.normalize(pooled.float(), dim=1).cpu().numpy()
        if self.whitening is not None:
            vectors = apply_whitening(self.whitening, vectors)
        if self.head is not None:
            vectors = self._through_head(vectors)
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def _through_head(self, vectors: np.ndarray) -> np.ndarray:
        """The projection head's unit-norm output for (N,D) vectors, in float32."""
        assert self.head is not None
        with torch.inference_mode():
            inputs = torch.from_numpy(np.ascontiguousarray(vectors, dtype=np.float32))
            projected: np.ndarray = self.head(inputs.to(self.device)).float().cpu().numpy()
            return projected

    def _pooled_at(self, inputs: torch.Tensor, scale: float) -> torch.Tensor:
        """The L2-normalised pooled descriptor of `inputs` resized by `scale` (multi-scale)."""
        if scale != 1.0:
            size = max(32, round(inputs.shape[-1] * scale))
            inputs = torch.nn.functional.interpolate(
                inputs.float(), size=(size, size), mode="bilinear", antialias=True,
                align_corners=False,
            ).to(self.dtype).contiguous(memory_format=self.memory_format)
        features = self.model(inputs).float()
        pooled = pool(features, method=self.options.pooling, p=self.options.gem_p)
        return torch.nn.functional.normalize(pooled, dim=1)

    def feature_maps(self, batch: torch.Tensor) -> torch.Tensor:
        """(N,3,S,S) uint8 pixels to the backbone's last (N,C,h,w) float32 feature maps, before
        pooling: what `embed_tensors` pools, kept per location (to explain a match)."""
        if batch.dim() != 4 or batch.shape[1] != 3 or batch.dtype != torch.uint8:
            raise ValueError(
                f"expected a (N,3,H,W) uint8 batch, got {tuple(batch.shape)} {batch.dtype}")
        with self._gate.calling(), torch.inference_mode():
            maps: torch.Tensor = self.model(self._model_inputs(batch)).float().contiguous().cpu()
            return maps

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        """(N,D) vectors for in-memory images, in batches of `batch_size`."""
        size = self.options.batch_size
        chunks = [
            self.embed_tensors(
                torch.stack([self.to_tensor(image) for image in images[i : i + size]])
            )
            for i in range(0, len(images), size)
        ]
        if not chunks:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.ascontiguousarray(np.concatenate(chunks), dtype=np.float32)

    def embed_stream(
        self, items: Sequence[T], prepare: Callable[[T], Prepared]
    ) -> Iterator[EmbeddedBatch]:
        """Embed `items` in input order, `prepare` running in `num_workers` worker processes.

        `prepare` must be picklable (a module-level function or a functools.partial of one) and
        should catch its own errors into the payload with tensor=None. If it raises anyway, that
        item comes back with vector None and a `PrepareFailed(index, error)` payload.
        """
        workers = self.options.num_workers
        in_workers = self.options.embed_in_workers and workers > 0
        if in_workers:
            self._warm()
        loader = DataLoader(
            _PreparedItems(items, prepare, self.input_size),
            batch_size=self.options.batch_size,
            shuffle=False,
            num_workers=workers,
            collate_fn=functools.partial(_collate_embedded, self) if in_workers else _collate,
            prefetch_factor=_PREFETCH_FACTOR if workers > 0 else None,
            persistent_workers=False,
        )
        with self._gate.forking() if in_workers else contextlib.nullcontext(), \
                _garbage_left_behind():
            batches = iter(loader)  # forks the worker processes
        for collated in batches:
            yield self._finish(collated)

    def _warm(self) -> None:
        """Run a model call of `forward_batch` images here, once, before workers are forked:
        what a first call builds (an engine's model compiled for that shape) is then built
        once, not again in every worker of every stream."""
        if not self._warmed:
            self.embed_tensors(torch.zeros(self.options.forward_batch, 3, self.input_size,
                                           self.input_size, dtype=torch.uint8))
            self._warmed = True

    def _finish(self, collated: _Collated) -> EmbeddedBatch:
        """Run the model on a collated batch and put vectors back beside their payloads."""
        embedded = collated.vectors
        if embedded is None and collated.tensors is not None:
            embedded = self.embed_tensors(collated.tensors)
        rows = iter(()) if embedded is None else iter(embedded)
        vectors = [next(rows) if present else None for present in collated.present]
        failed = collated.present.count(False)
        if failed:
            logger.debug("batch of %d items had %d without a tensor", len(vectors), failed)
        return EmbeddedBatch(collated.payloads, vectors)
