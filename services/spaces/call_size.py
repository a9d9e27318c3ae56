"""The model call size of a space's embedder when the settings leave `forward_batch` unset:
the fastest of retrieval's CALL_SIZES, measured once per model and CPU and kept in the engine
folder, so that every later process (a server, a worker, the next ingest) reads it instead of
measuring it again."""

from __future__ import annotations

import fcntl
import hashlib
import logging
from collections.abc import Callable
from pathlib import Path

from lookalike.retrieval.embedding.call_size import CALL_SIZES, measure_call_sizes
from lookalike.retrieval.embedding.embedder import Embedder, EmbedderOptions
from lookalike.retrieval.models.engine_names import INT8_ENGINE, MIXED_ENGINE, REFERENCE_ENGINE
from lookalike.services.config import Settings, cpu_model, usable_cpus
from lookalike.services.errors import CallSizeUnreadable
from lookalike.services.spaces.engines import int8_part, mixed_part
from lookalike.services.storage.files import write_atomic

logger = logging.getLogger(__name__)


def call_size_file(settings: Settings, *, backbone: str, weights_sha256: str, engine: str,
                   options: EmbedderOptions, fp32_stem: int, int8_fp32_stem: int) -> Path:
    """Where the call size of this model, run by `engine` with `options`, on this CPU is
    kept. For torch the precision and graph are part of the engine, for the mixed engine its
    split (`fp32_stem`), for the int8 engine its (`int8_fp32_stem`); the CPU's model name,
    its usable cores, the threads a call runs on, the input size and the scales are hashed
    into the name, so that an engine folder shared by several kinds of machine keeps one
    each."""
    if engine == REFERENCE_ENGINE:
        engine = (f"torch-{'bf16' if options.bf16 else 'fp32'}"
                  f"{'-graph' if options.frozen_graph else ''}")
    elif engine == MIXED_ENGINE:
        engine = f"{engine}-{mixed_part(fp32_stem)}"
    elif engine == INT8_ENGINE:
        engine = f"{engine}-{int8_part(int8_fp32_stem)}"
    run = (f"{cpu_model()}|{usable_cpus()} cores|{settings.torch_threads or 1} threads|"
           f"{options.input_size} px|scales {','.join(map(str, options.scales))}")
    digest = hashlib.sha256(run.encode()).hexdigest()[:16]
    return (settings.engine_dir / "call-sizes" /
            f"{backbone}-{weights_sha256[:16]}-{engine}-{digest}.txt")


def kept_call_size(path: Path, *, embedder_of: Callable[[int], Embedder]) -> int:
    """The call size kept at `path`; else measured on `embedder_of(max(CALL_SIZES))` (an
    embedder taking that many images a call) and kept there. Processes that start together
    measure once: the first holds a lock on the folder while it measures, and the others
    then read its answer. Where the folder cannot be written (an engine folder mounted
    read-only), each process measures for itself, and says so."""
    kept = _read(path)
    if kept is not None:
        return kept
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = (path.parent / ".measuring.lock").open("a")
    except OSError as error:
        _not_kept(path, error)
        return _measured(embedder_of, path)
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            kept = _read(path)
            if kept is not None:
                return kept
            fastest = _measured(embedder_of, path)
            try:
                write_atomic(path, f"{fastest}\n".encode())
            except OSError as error:
                _not_kept(path, error)
            return fastest
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _measured(embedder_of: Callable[[int], Embedder], path: Path) -> int:
    """The fastest call size of `embedder_of(max(CALL_SIZES))`, measured now and logged."""
    embedder = embedder_of(max(CALL_SIZES))
    logger.info("measuring which model call size runs %s fastest on this CPU (once; kept in "
                "%s)", embedder.engine, path)
    rates = measure_call_sizes(embedder, sizes=CALL_SIZES)
    figures = ", ".join(f"{size}: {rate:.0f}" for size, rate in rates.images_per_s.items())
    logger.info("model calls of %d images (images/s by call size: %s)", rates.fastest, figures)
    return rates.fastest


def _not_kept(path: Path, error: OSError) -> None:
    logger.warning("the model call size cannot be kept in %s (%s): this process measures it "
                   "for itself; set LOOKALIKE_FORWARD_BATCH to skip measuring", path.parent,
                   error)


def _read(path: Path) -> int | None:
    """The call size written at `path`, or None when there is none yet."""
    try:
        text = path.read_text()
    except (FileNotFoundError, NotADirectoryError):
        return None
    if not text.strip().isdigit() or int(text) < 1:
        raise CallSizeUnreadable(f"{path} holds {text[:40]!r}, not a model call size: delete "
                                 "it to measure again, or set LOOKALIKE_FORWARD_BATCH")
    return int(text)
