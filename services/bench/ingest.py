"""`bench ingest`: model-only, end-to-end and naive per-image throughput, measured in one run,
with the end-to-end run's CPU per image by part and one upload's p50; `bench forward`: the
model's speed for each number of images per call."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import io
import resource
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from lookalike.retrieval.embedding.embedder import Embedder, Prepared
from lookalike.retrieval.models.registry import BackboneSpec, load_feature_extractor
from lookalike.services.bench.search import percentiles_ms
from lookalike.services.catalog.models import Space
from lookalike.services.config import Settings, usable_cpus
from lookalike.services.ingest.pipeline import ingest_bytes, ingest_items
from lookalike.services.ingest.prepare import decode_for_model, prepare_config
from lookalike.services.ingest.sources import collect_items
from lookalike.services.runtime import Runtime
from lookalike.services.sample import bundled_photos
from lookalike.services.setup import init_catalog, open_runtime
from lookalike.services.spaces.lookup import ensure_default_space, space_weights

UPLOADS = 32
UPLOAD_SEED = 1  # the end-to-end run's files are drawn with seed 0


@dataclass(frozen=True)
class IngestBench:
    images: int
    batch_size: int
    forward_batch: int
    decode_workers: int
    embed_in_workers: bool
    torch_threads: int
    frozen_graph: bool
    model_only_per_s: float
    # the same pre-decoded images through the model in one worker a core (each one thread),
    # as ingest's workers run it: what the cores could embed were nothing decoded; None where
    # forked workers cannot run the space's model (more than one thread, or no fork)
    model_all_cores_per_s: float | None
    end_to_end_per_s: float
    naive_per_s: float
    naive_images: int
    cpu: IngestCpu
    upload_p50_ms: float  # one new photo at a time through the upload path (POST /v1/images)

    @property
    def e2e_over_model(self) -> float:
        return self.end_to_end_per_s / self.model_only_per_s

    @property
    def e2e_over_naive(self) -> float:
        return self.end_to_end_per_s / self.naive_per_s

    @property
    def e2e_over_model_all_cores(self) -> float | None:
        if self.model_all_cores_per_s is None:
            return None
        return self.end_to_end_per_s / self.model_all_cores_per_s

    def to_public(self) -> dict:
        over_all = self.e2e_over_model_all_cores
        return {**asdict(self), "e2e_over_model": round(self.e2e_over_model, 3),
                "e2e_over_naive": round(self.e2e_over_naive, 3),
                "e2e_over_model_all_cores": None if over_all is None else round(over_all, 3)}


@dataclass(frozen=True)
class IngestCpu:
    """CPU ms per image of the end-to-end run, by where it was spent, beside the model-only
    run's: where end to end loses to the model alone (the model's thread doing more than the
    model, or the cores running out) is then a figure, not a guess."""

    model_only_ms: float  # the calling thread, model-only run
    calling_thread_ms: float  # end to end: the calling thread (hashes first; runs the model
    # unless the workers do)
    other_threads_ms: float  # end to end: the process's other threads (the catalog writer)
    decode_workers_ms: float  # end to end: the worker processes (decoding, and embedding if
    # `embed_in_workers`)
    cores_busy: float  # end to end: all of the above over the wall-clock time

    @property
    def total_ms(self) -> float:
        return self.calling_thread_ms + self.other_threads_ms + self.decode_workers_ms


@dataclass(frozen=True)
class _Clocks:
    """CPU seconds so far: this thread's, this process's, and its waited-for children's."""

    wall: float
    thread: float
    process: float
    children: float

    @classmethod
    def now(cls) -> _Clocks:
        own = resource.getrusage(resource.RUSAGE_SELF)
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        return cls(time.perf_counter(), time.thread_time(), own.ru_utime + own.ru_stime,
                   children.ru_utime + children.ru_stime)

    def cpu_since(self, start: _Clocks, images: int, *, model_only_ms: float) -> IngestCpu:
        """Per image, what each part used between `start` and these clocks."""
        thread = self.thread - start.thread
        others = self.process - start.process - thread
        workers = self.children - start.children
        per_image = 1000 / images
        return IngestCpu(model_only_ms=round(model_only_ms, 3),
                         calling_thread_ms=round(thread * per_image, 3),
                         other_threads_ms=round(others * per_image, 3),
                         decode_workers_ms=round(workers * per_image, 3),
                         cores_busy=round((thread + others + workers)
                                          / (self.wall - start.wall), 2))


def write_photo_files(directory: Path, count: int, *, seed: int = 0) -> list[Path]:
    """`count` distinct camera-sized JPEGs cut from the bundled photos (deterministic)."""
    rng = np.random.default_rng(seed)
    photos = [p.image for p in bundled_photos()]
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        photo = photos[i % len(photos)]
        w, h = photo.size
        cw, ch = int(w * rng.uniform(0.6, 1.0)), int(h * rng.uniform(0.6, 1.0))
        x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        crop = photo.crop((x, y, x + cw, y + ch)).resize((800, 600), Image.Resampling.BICUBIC)
        buffer = io.BytesIO()
        crop.save(buffer, format="JPEG", quality=90)
        path = directory / f"bench-{i:05d}.jpg"
        path.write_bytes(buffer.getvalue())
        paths.append(path)
    return paths


def _model_only(embedder: Embedder, tensors: torch.Tensor, batch_size: int
                ) -> tuple[float, float]:
    """Images/s of the forward pass alone on pre-decoded tensors, same batch size and threads
    (measured before and after the end-to-end run; the caller keeps the faster), and the
    calling thread's CPU ms per image meanwhile."""
    embedder.embed_tensors(tensors[:batch_size])
    started, cpu = time.perf_counter(), time.thread_time()
    for start in range(0, len(tensors), batch_size):
        embedder.embed_tensors(tensors[start:start + batch_size])
    return (len(tensors) / (time.perf_counter() - started),
            (time.thread_time() - cpu) * 1000 / len(tensors))


def _decoded(tensors: torch.Tensor, index: int) -> Prepared:
    """`prepare` for a stream of already decoded model inputs: item `index`'s tensor."""
    return Prepared(tensors[index], index)


def _model_all_cores(embedder: Embedder, tensors: torch.Tensor) -> float | None:
    """Images/s of the pre-decoded tensors through the model in one worker a core, each
    running it on one thread (ingest's workers, without decoding or the catalog); None
    where forked workers cannot run this model (`Embedder.check_forkable`)."""
    try:
        embedder.check_forkable()
    except ValueError:
        return None
    kept = embedder.options
    embedder.options = dataclasses.replace(kept, num_workers=usable_cpus(),
                                           embed_in_workers=True)
    try:
        started = time.perf_counter()
        embedded = sum(len(batch.vectors) for batch in embedder.embed_stream(
            range(len(tensors)), functools.partial(_decoded, tensors)))
        return embedded / (time.perf_counter() - started)
    finally:
        embedder.options = kept


def _naive(spec: BackboneSpec, weights: Path, paths: list[Path]) -> float:
    """Images/s of the obvious loop: open, convert, resize, normalise, forward one image at a
    time through a plain fp32 model, as a first version would be written."""
    model = load_feature_extractor(spec, weights=weights)
    size = spec.weights.input_size
    mean = torch.tensor(spec.weights.mean).view(3, 1, 1)
    std = torch.tensor(spec.weights.std).view(3, 1, 1)
    started = time.perf_counter()
    with torch.no_grad():
        for path in paths:
            image = Image.open(path).convert("RGB").resize((size, size))
            pixels = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0)
            tensor = (pixels.permute(2, 0, 1) - mean) / std
            features = model(tensor.unsqueeze(0))
            torch.nn.functional.normalize(features.mean(dim=(2, 3)), dim=1)
    return len(paths) / (time.perf_counter() - started)


def _upload_p50_ms(runtime: Runtime, folder: Path) -> float:
    """p50 ms of adding UPLOADS new photos one at a time through `ingest_bytes`, what POST
    /v1/images runs (decode, the original stored and synced, the model, the catalog row, the
    index), after one to warm the path."""
    times = []
    for number, path in enumerate(write_photo_files(folder, UPLOADS + 1, seed=UPLOAD_SEED)):
        started = time.perf_counter()
        added = ingest_bytes(runtime, path.read_bytes(), source=str(path))
        times.append(time.perf_counter() - started)
        if not added.created:
            raise RuntimeError(f"upload {number} was already in the catalog: {path}")
    return percentiles_ms(times[1:])[0]


@dataclass
class _Bench:
    """A throw-away LOOKALIKE_HOME with the default space, its model, and photo files."""

    root: Path
    runtime: Runtime
    space: Space
    embedder: Embedder
    tensors: torch.Tensor


@contextlib.contextmanager
def _bench_home(settings: Settings, images: int) -> Iterator[_Bench]:
    """`images` photo files in a temp folder, a SQLite catalog beside them, and their
    decoded model inputs; everything is removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="lookalike-bench-") as tmp:
        paths = write_photo_files(Path(tmp) / "files", images)
        home_settings = settings.model_copy(update={"home": Path(tmp) / "home",
                                                    "database_url": None})
        init_catalog(home_settings)
        runtime = open_runtime(home_settings)
        with runtime.session() as session:
            space = ensure_default_space(session=session, settings=home_settings)
            session.commit()
        embedder = runtime.embedder(space)
        config = prepare_config(runtime, embedder)
        tensors = torch.stack([decode_for_model(p.read_bytes(), config=config)[1]
                               for p in paths])
        try:
            yield _Bench(Path(tmp), runtime, space, embedder, tensors)
        finally:
            runtime.close()


def run_ingest_bench(settings: Settings, *, images: int, naive_images: int) -> IngestBench:
    """Measure the three throughputs on the same files in a throw-away LOOKALIKE_HOME."""
    with _bench_home(settings, images) as bench:
        embedder, runtime = bench.embedder, bench.runtime
        model_before = _model_only(embedder, bench.tensors, settings.batch_size)
        started = _Clocks.now()
        summary = ingest_items(runtime, collect_items([bench.root / "files"]))
        with runtime.session() as session:
            replica = runtime.replica(bench.space, session=session)
        finished = _Clocks.now()
        end_to_end = summary.added / (finished.wall - started.wall)
        if replica.ntotal != images:
            raise RuntimeError(f"only {replica.ntotal} of {images} files reached the index")
        model_only, model_cpu_ms = max(
            model_before, _model_only(embedder, bench.tensors, settings.batch_size))
        model_all_cores = _model_all_cores(embedder, bench.tensors)
        cpu = finished.cpu_since(started, images, model_only_ms=model_cpu_ms)
        upload_ms = _upload_p50_ms(runtime, bench.root / "uploads")
        paths = sorted((bench.root / "files").iterdir())[:naive_images]
        naive = _naive(embedder.spec, space_weights(bench.space, settings=runtime.settings),
                       paths)
    return IngestBench(images=images, batch_size=settings.batch_size,
                       forward_batch=embedder.options.forward_batch,
                       decode_workers=settings.decode_workers or 0,
                       embed_in_workers=bool(settings.embed_in_workers),
                       torch_threads=torch.get_num_threads(),
                       frozen_graph=settings.frozen_graph, model_only_per_s=model_only,
                       model_all_cores_per_s=model_all_cores,
                       end_to_end_per_s=end_to_end, naive_per_s=naive,
                       naive_images=naive_images, cpu=cpu, upload_p50_ms=upload_ms)


@dataclass(frozen=True)
class ForwardBench:
    batch_size: int
    images_per_s: dict[int, float]
    chosen: int  # the call size the space's embedder runs at here (set, or measured and kept)


def run_forward_bench(settings: Settings, *, sizes: list[int], images: int = 64,
                      rounds: int = 3) -> ForwardBench:
    """Images/s of the default space's model on one batch of decoded photos, cut into model
    calls of each size (the best of `rounds`): what `forward_batch` should be here."""
    figures = {}
    with _bench_home(settings, images) as bench:
        chosen = bench.embedder.options.forward_batch
        for size in sizes:
            bench.embedder.options = dataclasses.replace(bench.embedder.options,
                                                         forward_batch=size)
            figures[size] = max(_model_only(bench.embedder, bench.tensors, images)[0]
                                for _ in range(rounds))
    return ForwardBench(batch_size=images, images_per_s=figures, chosen=chosen)
