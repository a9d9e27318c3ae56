"""`bench speed`: the README's speed table from one run, as ratios measured side by side.

Each inference engine's images/s on one thread in calls of 4 (against the frozen
TorchScript bf16 channels_last path the project ran before engines), JPEG decoding with and
without DCT scaling, and a real `lookalike serve` on a throw-away catalog of the sample
collection: search by upload with one client against decode + one forward pass, with 16
clients against the best engine's images/s, and search by id against FAISS alone. Each
served figure and what it is measured against are timed in turn, in blocks (the one-client
uploads and decode + forward; the 16 clients and the best and space engines alone, one
thread, the server idle; the searches by id and FAISS alone), so that the machine's pace
drifting during the run (a shared VM's can move by a third within minutes) moves both alike.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from lookalike.retrieval.embedding.embedder import (
    Embedder,
    EmbedderOptions,
    image_to_pixels,
    native_bf16,
    native_int8,
)
from lookalike.retrieval.images import decode_image
from lookalike.retrieval.models.engine_names import INT8_ENGINE
from lookalike.retrieval.models.engines import installed_engines
from lookalike.retrieval.models.registry import BackboneSpec, file_sha256, get_backbone
from lookalike.services.bench.catalog import seed_sample, throwaway_catalog
from lookalike.services.bench.httpload import concurrent, prepare_search, sequential
from lookalike.services.bench.processes import tree_cpu_seconds
from lookalike.services.bench.search import (
    free_port,
    percentiles_ms,
    start_server,
    time_search_by_id,
)
from lookalike.services.catalog import embeddings as embedding_queries
from lookalike.services.config import Settings
from lookalike.services.index.replicas import IndexReplica, vectors_from_bytes
from lookalike.services.ingest.prepare import decode_for_model, prepare_config
from lookalike.services.sample import bundled_photos
from lookalike.services.setup import open_runtime
from lookalike.services.spaces.engines import engine_trunk, kept_agreement
from lookalike.services.spaces.lookup import ensure_default_space, find_space, space_weights

CALL = 4
DECODE_PHOTOS = 8  # photos re-encoded at 12 MP and 800x600 for the decode figures
REFERENCE_PATH = "torchscript-bf16"
UNLIMITED = "1000000/second"
ALTERNATIONS = 4  # blocks of each served figure and of what it is measured against, in turn


@dataclass
class SpeedBench:
    """One run's figures; the ratios are what the README's table and the targets compare."""

    engines_per_s: dict[str, float]
    dynamic_shape_per_s: dict[str, float]
    best_engine: str
    best_over_torchscript_bf16: float
    decode_ms: dict[str, float]
    draft_cosine: dict[str, float]
    engine_cosine: dict[str, float] = field(default_factory=dict)
    space_engine: str = ""
    # The engine a space gets by default; None where it is torch, timed only as its paths.
    space_engine_over_torchscript_bf16: float | None = None
    catalog_images: int = 0
    upload_p50_ms: float = 0.0
    upload_took_p50_ms: float = 0.0  # the server's own `took_ms` for the same searches
    decode_and_forward_ms: float = 0.0
    upload_p50_over_decode_forward: float = 0.0
    clients: int = 0
    workers: int = 1
    upload_many_per_s: float = 0.0
    best_engine_beside_clients_per_s: float = 0.0
    space_engine_beside_clients_per_s: float = 0.0
    upload_many_over_best_engine: float = 0.0
    upload_many_over_space_engine: float = 0.0
    upload_many_server_cpu_ms: float = 0.0
    upload_many_busiest_share: list[float] = field(default_factory=list)
    upload_many_block_per_s: list[float] = field(default_factory=list)
    by_id_p50_ms: float = 0.0
    faiss_p50_ms: float = 0.0
    # the same FAISS search right after a forward pass, as a search by upload runs it
    faiss_after_forward_p50_ms: float = 0.0
    by_id_p50_minus_faiss_ms: float = 0.0
    notes: list[str] = field(default_factory=list)

    def to_public(self) -> dict:
        return asdict(self)


ModelRun = Callable[[], object]  # one call of 4 images through one engine, one thread


def _rates(runs: dict[str, ModelRun], *, images: int, seconds: float) -> dict[str, float]:
    """Images/s of each of `runs` (each call embeds `images`) after two warm-up calls, the
    best of 3 rounds of seconds / 3; the runs take their rounds in turn, so that the
    machine's pace drifting meanwhile reaches every run alike."""
    for run in runs.values():
        for _ in range(2):
            run()
    best = dict.fromkeys(runs, 0.0)
    for _ in range(3):
        for name, run in runs.items():
            calls, started = 0, time.perf_counter()
            while (elapsed := time.perf_counter() - started) < seconds / 3:
                run()
                calls += 1
            best[name] = max(best[name], calls * images / elapsed)
    return best


@contextmanager
def _one_torch_thread() -> Iterator[None]:
    """torch on one thread meanwhile (the OpenVINO engines are compiled for one)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _engine_rates(settings: Settings, runtime_weights: Path, *, seconds: float
                  ) -> tuple[dict[str, float], dict[str, float], dict[str, ModelRun]]:
    """Each installed engine and the TorchScript bf16 / eager fp32 paths, one thread; each
    OpenVINO engine again with its dynamic-shape model only; and each one's call, to time
    it again later."""
    spec = get_backbone(settings.backbone)
    sha = file_sha256(runtime_weights)
    one = settings.model_copy(update={"torch_threads": 1})
    pixels = torch.stack([image_to_pixels(p.image, size=spec.weights.input_size)
                          for p in bundled_photos()[:CALL]])
    torch_paths = {"torch-fp32-eager": EmbedderOptions(forward_batch=CALL, bf16=False),
                   "torchscript-fp32": EmbedderOptions(forward_batch=CALL, bf16=False,
                                                       frozen_graph=True)}
    if native_bf16():
        torch_paths[REFERENCE_PATH] = EmbedderOptions(forward_batch=CALL, bf16=True,
                                                      frozen_graph=True)
    with _one_torch_thread():
        runs, unshaped = _model_runs(torch_paths, spec=spec, weights=runtime_weights, sha=sha,
                                     settings=one, pixels=pixels)
        rates = _rates({**runs, **{f"{name} dynamic": run for name, run in unshaped.items()}},
                       images=CALL, seconds=seconds)
    dynamic = {name: rates.pop(f"{name} dynamic") for name in unshaped}
    return rates, dynamic, runs


def _model_runs(torch_paths: dict[str, EmbedderOptions], *, spec: BackboneSpec, weights: Path,
                sha: str, settings: Settings, pixels: torch.Tensor
                ) -> tuple[dict[str, ModelRun], dict[str, ModelRun]]:
    """A call on `pixels` of each torch path and each other installed engine; and of each
    OpenVINO engine through its dynamic-shape model alone."""
    runs: dict[str, ModelRun] = {}
    unshaped: dict[str, ModelRun] = {}
    for name, options in torch_paths.items():
        trunk = engine_trunk("torch", spec=spec, weights=weights, weights_sha256=sha,
                             settings=settings)
        runs[name] = partial(Embedder(trunk, spec=spec, options=options).embed_tensors, pixels)
    for engine in installed_engines():
        if engine == "torch":
            continue
        for static_shapes, into in ((settings.engine_static_shapes, runs), (0, unshaped)):
            trunk = engine_trunk(engine, spec=spec, weights=weights, weights_sha256=sha,
                                 settings=settings.model_copy(
                                     update={"engine_static_shapes": static_shapes}))
            into[engine] = partial(Embedder(trunk, spec=spec, options=EmbedderOptions(
                forward_batch=CALL)).embed_tensors, pixels)
    return runs, unshaped


def _engine_cosines(settings: Settings, weights: Path, *, engines: list[str]
                    ) -> dict[str, float]:
    """Each engine's lowest cosine to eager fp32 torch over the bundled photos: what decides
    whether it may be the default (services/spaces/engines.py MATCH_COSINE), read where
    choosing the default kept it, else measured and kept."""
    spec = get_backbone(settings.backbone)
    sha = file_sha256(weights)
    reference: list[np.ndarray] = []
    return {engine: round(kept_agreement(engine, spec=spec, weights=weights,
                                         weights_sha256=sha, settings=settings,
                                         reference=reference), 5)
            for engine in engines}


def jpeg_of(image: Image.Image, size: tuple[int, int]) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").resize(size, Image.Resampling.BICUBIC).save(buffer, "JPEG",
                                                                     quality=90)
    return buffer.getvalue()


def _decode_figures(embedder: Embedder, settings: Settings
                    ) -> tuple[dict[str, float], dict[str, float]]:
    """ms per decode to model pixels of a 12 MP and an 800x600 JPEG, with DCT scaling
    (draft) and without; the lowest cosine between the vectors of both decodes."""
    photos = [p.image for p in bundled_photos()[:DECODE_PHOTOS]]
    size = embedder.input_size
    figures, cosines = {}, {}
    for label, shape in (("12mp", (4000, 3000)), ("800x600", (800, 600))):
        files = [jpeg_of(photo, shape) for photo in photos]
        for draft in (True, False):
            def decode(files: list[bytes] = files, draft: bool = draft) -> list[torch.Tensor]:
                return [embedder.to_tensor(decode_image(
                    data, max_bytes=settings.max_upload_bytes, max_pixels=settings.max_pixels,
                    draft=(size, size) if draft else None).image) for data in files]
            started = time.perf_counter()
            decoded = decode()
            key = f"{label}_{'draft' if draft else 'full'}"
            figures[key] = (time.perf_counter() - started) * 1000 / len(files)
            if draft:
                with_draft = embedder.embed_tensors(torch.stack(decoded))
            else:
                full = embedder.embed_tensors(torch.stack(decoded))
                cosines[label] = round(float(np.sum(with_draft * full, axis=1).min()), 5)
    return figures, cosines


def run_speed_bench(settings: Settings, *, seconds: float, sample_per_class: int,
                    queries: int, clients: int, serve: bool, workers: int = 1) -> SpeedBench:
    """Every figure of the speed table from this one run (see the module's docstring)."""
    with throwaway_catalog(settings, postgres=None) as bench:
        if serve:
            summary = seed_sample(bench, fashion_per_class=sample_per_class)
        with open_runtime(bench) as runtime:
            if not serve:
                with runtime.session() as session:
                    ensure_default_space(session=session, settings=bench)
                    session.commit()
            with runtime.session() as session:
                space = find_space(session=session, name=None)
            weights = space_weights(space, settings=bench)
            rates, dynamic, runs = _engine_rates(bench, weights, seconds=seconds)
            embedder = runtime.embedder(space)
            decode_ms, draft_cosine = _decode_figures(embedder, bench)
            best = max(rates, key=rates.__getitem__)
            reference = rates.get(REFERENCE_PATH, rates["torchscript-fp32"])
            result = SpeedBench(
                engine_cosine=_engine_cosines(bench, weights, engines=list(dynamic)),
                engines_per_s={k: round(v, 1) for k, v in rates.items()},
                dynamic_shape_per_s={k: round(v, 1) for k, v in dynamic.items()},
                best_engine=best,
                best_over_torchscript_bf16=round(rates[best] / reference, 2),
                decode_ms={k: round(v, 2) for k, v in decode_ms.items()},
                draft_cosine=draft_cosine, space_engine=space.options.engine,
                space_engine_over_torchscript_bf16=(
                    round(rates[space.options.engine] / reference, 2)
                    if space.options.engine in rates else None))
            if not native_bf16():
                result.notes.append("no native bf16: torchscript-fp32 stands in for the "
                                    "TorchScript bf16 path")
            if INT8_ENGINE in rates and not native_int8():
                result.notes.append("no VNNI or AMX: int8 sums saturate in 16 bits here, so "
                                    "its vectors stray further from fp32's")
            if not serve:
                return result
            result.catalog_images = summary.added
            models = {name: runs[name] for name in (best, space.options.engine) if name in runs}
            _serve_figures(result, runtime, bench, space, models=models, queries=queries,
                           clients=clients, seconds=seconds, workers=workers)
    return result


def _serve_figures(result: SpeedBench, runtime, settings: Settings, space, *,
                   models: dict[str, ModelRun], queries: int, clients: int, seconds: float,
                   workers: int) -> None:
    """The HTTP figures, each against what it is compared with timed here in the same run,
    in alternating blocks (`models`: the best and the space engine's calls), from a server
    of `workers` processes (one client's requests stay on one of them)."""
    uploads = [jpeg_of(p.image, (640, 480)) for p in bundled_photos()]
    embedder = runtime.embedder(space)
    config = prepare_config(runtime, embedder)

    with runtime.session() as session:
        ids = sorted(embedding_queries.embedded_image_ids(session=session, space_id=space.id))
        chosen = np.random.default_rng(0).choice(ids, size=queries, replace=True)
        blobs = [embedding_queries.get_vector(session=session, space_id=space.id,
                                              image_id=int(i)) for i in chosen]
        replica = runtime.replica(space, session=session)
    vectors = vectors_from_bytes(blobs, space.dim)

    def decode_and_forward() -> tuple[list[float], list[float]]:
        """Seconds of decoding and one forward pass of each upload, here in this process, and
        of the FAISS search of its vector right after: the index's memory as a served search
        by upload finds it, the forward pass having just run through the caches."""
        times, searches = [], []
        for data in uploads:
            started = time.perf_counter()
            _, tensor = decode_for_model(data, config=config)
            vector = embedder.embed_tensors(tensor.unsqueeze(0))
            times.append(time.perf_counter() - started)
            started = time.perf_counter()
            replica.search(vector, 10)
            searches.append(time.perf_counter() - started)
        return times, searches
    port = free_port()
    server = start_server(settings, port, {"LOOKALIKE_RATE_SEARCH": UNLIMITED,
                                           "LOOKALIKE_RATE_SEARCH_UPLOAD": UNLIMITED},
                          workers=workers, timeout_s=300)
    result.workers = workers
    try:
        by_id, faiss = _by_id_and_faiss(port, chosen, vectors, replica)
        upload, took, local, after = _one_client(port, uploads, queries, decode_and_forward)
        result.upload_p50_ms = round(upload, 2)
        result.faiss_after_forward_p50_ms = round(after, 3)
        result.upload_took_p50_ms = round(took, 2)
        result.decode_and_forward_ms = round(local, 2)
        result.clients = clients
        many = _many_clients(port, uploads, clients, seconds, models, server_pid=server.pid)
    finally:
        server.terminate()
        server.wait(timeout=30)
    result.by_id_p50_ms = round(by_id, 2)
    result.faiss_p50_ms = round(faiss, 3)
    result.by_id_p50_minus_faiss_ms = round(result.by_id_p50_ms - result.faiss_p50_ms, 2)
    result.upload_p50_over_decode_forward = round(
        result.upload_p50_ms / result.decode_and_forward_ms, 2)
    result.upload_many_per_s = round(many.per_s, 1)
    result.upload_many_block_per_s = many.block_per_s
    result.upload_many_busiest_share = many.busiest_share
    result.upload_many_server_cpu_ms = many.server_cpu_ms
    best_rate = many.model_per_s[result.best_engine]
    result.best_engine_beside_clients_per_s = round(best_rate, 1)
    result.upload_many_over_best_engine = round(many.per_s / best_rate, 2)
    space_rate = many.model_per_s.get(result.space_engine)
    if space_rate:
        result.space_engine_beside_clients_per_s = round(space_rate, 1)
        result.upload_many_over_space_engine = round(many.per_s / space_rate, 2)


def _by_id_and_faiss(port: int, chosen: np.ndarray, vectors: np.ndarray, replica: IndexReplica
                     ) -> tuple[float, float]:
    """p50 ms of sequential searches by id over HTTP and of the FAISS search alone (here,
    on this process's replica) for the same ids, timed in alternating blocks."""
    remote: list[float] = []
    faiss: list[float] = []
    for block in np.array_split(np.arange(len(chosen)), ALTERNATIONS):
        for row in vectors[block]:
            started = time.perf_counter()
            replica.search(row[None, :], 10)
            faiss.append(time.perf_counter() - started)
        remote += time_search_by_id(port, chosen[block], 10)
    return percentiles_ms(remote)[0], percentiles_ms(faiss)[0]


def _one_client(port: int, uploads: list[bytes], queries: int,
                decode_and_forward: Callable[[], tuple[list[float], list[float]]]
                ) -> tuple[float, float, float, float]:
    """p50 ms of sequential searches by upload on one keep-alive connection, p50 of the
    server's `took_ms` in their answers (the search function's time, without HTTP), p50 ms
    of decode + forward here and of the FAISS search right after each: timed in alternating
    blocks, so that a machine that slows down or speeds up meanwhile moves both figures alike
    (the ratio is the target)."""
    requests = [prepare_search(port, k=10, upload=data) for data in uploads]
    remote: list[float] = []
    local: list[float] = []
    after: list[float] = []
    answers: list[bytes] = []
    for _ in range(ALTERNATIONS):
        forward, searches = decode_and_forward()
        local += forward
        after += searches
        remote += sequential(port, requests, count=max(1, queries // ALTERNATIONS),
                             answers=answers)
    took = [json.loads(answer)["took_ms"] for answer in answers]
    return (percentiles_ms(remote)[0], float(np.median(took)), percentiles_ms(local)[0],
            percentiles_ms(after)[0])


@dataclass(frozen=True)
class ManyClients:
    """The 16-client blocks: each block's requests/s and its busiest server process's share
    of the server's CPU, the CPU per request over all blocks, and each model alone."""

    block_per_s: list[float]
    busiest_share: list[float]
    server_cpu_ms: float
    model_per_s: dict[str, float]

    @property
    def per_s(self) -> float:
        """Requests/s of the 16 clients: the mean of the blocks."""
        return float(np.mean(self.block_per_s))


def _many_clients(port: int, uploads: list[bytes], clients: int, seconds: float,
                  models: dict[str, ModelRun], *, server_pid: int) -> ManyClients:
    """Searches by upload per second that `clients` concurrent clients get, and each of
    `models`' images/s alone (one thread, the server idle), timed in alternating blocks of
    `seconds` / ALTERNATIONS each; with the CPU the server's process tree spent. Each block
    opens its connections afresh, and the kernel may hand a burst of them to one process:
    a busiest share of 1.0 is one process serving all."""
    requests = [prepare_search(port, k=10, upload=data) for data in uploads]
    block = seconds / ALTERNATIONS
    served: list[float] = []
    shares: list[float] = []
    alone: dict[str, list[float]] = {name: [] for name in models}
    cpu_seconds = 0.0
    answered = 0
    for _ in range(ALTERNATIONS):
        with _one_torch_thread():
            for name, rate in _rates(models, images=CALL, seconds=block).items():
                alone[name].append(rate)
        before = tree_cpu_seconds(server_pid)
        rate, times = concurrent(port, requests, clients=clients, seconds=block)
        used = [spent - before.get(pid, 0.0)
                for pid, spent in tree_cpu_seconds(server_pid).items()]
        served.append(rate)
        answered += len(times)
        cpu_seconds += sum(used)
        shares.append(round(max(used) / sum(used), 2) if sum(used) else 0.0)
    return ManyClients(block_per_s=[round(rate, 1) for rate in served], busiest_share=shares,
                       server_cpu_ms=round(cpu_seconds / max(answered, 1) * 1000, 2),
                       model_per_s={name: float(np.mean(r)) for name, r in alone.items()})
