"""Inference engines for a backbone's trunk: torch (the reference, and training's path) and
OpenVINO in int8, bfloat16 or fp32, converted from the same torchvision module.

On one core of an AVX-512 BF16 CPU, OpenVINO's CPU plugin ran MobileNetV2 at ~1.6x the
frozen TorchScript bf16 channels_last graph in bfloat16, and at ~2x TorchScript fp32 in fp32
(`lookalike bench speed`), hence `ENGINES`' order: fastest first. bfloat16 moves vectors
(cosine down to ~0.991 on a dark retina photo, as torch's bf16 path does); fp32 matches
eager torch to 1e-5. The mixed engine runs the trunk's first `fp32_stem` modules (its
high-resolution layers, where a dark photo's small signal rides on a large offset that
bfloat16 rounds away) in fp32 and the rest in bfloat16, as one graph: 1.4-1.9x fp32's
images/s on an AMX CPU, 1.5x on an AVX-512 BF16 one, with vectors within cosine 0.9994 of
fp32's on the bundled photos. An exported
trunk takes any batch and image size (multi-scale descriptors run through it) and returns
the same (N,C,h,w) feature maps as the torch module, so pooling and whitening stay shared.
The int8 engine is the fp32 export quantized after training by NNCF (weights and
activations in int8, ranges calibrated on sample inputs): ~3x fp32's images/s on an AVX-512
VNNI CPU. Quantized whole, its vectors move further (cosine ~0.966 at worst on the bundled
photos, the dark retina scan again); with the trunk's first modules kept in fp32, as the
mixed engine keeps them, ~0.99 at 0.8-0.9 times the speed. Either way it is below
what a default must reach, so it runs only where a space asks for it by name.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import logging
import os
import re
import shutil
import sys
import tempfile
import threading
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import numpy as np
import torch

from lookalike.retrieval.errors import EngineUnavailable
from lookalike.retrieval.models.engine_names import (
    ENGINES,
    INT8_ENGINE,
    MIXED_ENGINE,
    REFERENCE_ENGINE,
)

_NEEDS_BF16 = ("openvino-bf16", MIXED_ENGINE)
_PRECISION = {"openvino-bf16": "bf16", MIXED_ENGINE: "bf16", "openvino-fp32": "f32",
              INT8_ENGINE: "f32"}
_FP32_PREFIX = "fp32_stem/"  # the mixed engine's stem layers, renamed apart from the body's
_UNMARKED_TYPES = frozenset({"Parameter", "Result", "Constant"})
_MODEL_FILE = "model.xml"


def installed_engines() -> list[str]:
    """The engines this machine can run, fastest first: torch always, OpenVINO when the
    package is installed, in bfloat16 (whole or mixed) only where the CPU runs it natively,
    in int8 where NNCF (which quantizes it) is installed too."""
    if importlib.util.find_spec("openvino") is None:
        return [REFERENCE_ENGINE]
    bf16 = openvino_bf16()
    nncf = importlib.util.find_spec("nncf") is not None
    return [engine for engine in ENGINES
            if (bf16 or engine not in _NEEDS_BF16) and (nncf or engine != INT8_ENGINE)]


def check_engine(engine: str) -> None:
    """Raise EngineUnavailable naming the engines this machine runs unless `engine` is one."""
    installed = installed_engines()
    if engine not in installed:
        known = "" if engine in ENGINES else f" (known: {', '.join(ENGINES)})"
        raise EngineUnavailable(f"engine '{engine}' is not available here{known}; available: "
                                f"{', '.join(installed)}")


def openvino_bf16() -> bool:
    """Whether OpenVINO's CPU plugin runs bfloat16 natively here (AVX-512 BF16 or AMX)."""
    import openvino

    capabilities = openvino.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    return "BF16" in capabilities


def openvino_version() -> str:
    """The installed OpenVINO's version: exported models are kept per version."""
    import openvino

    return str(openvino.__version__).split("-")[0]


def export_openvino(model: torch.nn.Module, *, example: torch.Tensor, directory: Path) -> Path:
    """Convert the eval-mode module to OpenVINO IR in `directory` (model.xml + model.bin),
    any batch and side, `example`'s channels, and return the model file."""
    return _save_whole(_converted(model, example), directory)


def export_mixed_openvino(model: torch.nn.Module, *, stem: int, example: torch.Tensor,
                          directory: Path) -> Path:
    """Export the mixed engine's trunk as one model: the trunk's first `stem` modules marked
    to stay in fp32 under a bfloat16 hint, the rest left to run in bfloat16. One compiled
    graph runs more images a second than the two halves compiled apart and called in turn
    (README, "One run, as ratios"), with the same vectors. The marks are IR attributes
    (`precise`: what OpenVINO's own passes set on layers that must keep their precision),
    which OpenVINO's Python API cannot set: they are written into the saved file."""
    if not isinstance(model, torch.nn.Sequential) or not 0 < stem < len(model):
        raise EngineUnavailable(f"the mixed engine needs a sequential trunk of more than {stem} "
                                "modules; use openvino-fp32 or openvino-bf16")
    import openvino

    head, body = model[:stem], model[stem:]
    with torch.no_grad():  # the converter traces it: not an inference-mode tensor
        middle = head(example)
    converted_head, converted_body = _converted(head, example), _converted(body, middle)
    fp32_layers = set()
    for op in converted_head.get_ops():
        op.set_friendly_name(f"{_FP32_PREFIX}{op.get_friendly_name()}")
        if op.get_type_name() not in _UNMARKED_TYPES:
            fp32_layers.add(op.get_friendly_name())
    (joint,) = converted_head.get_results()
    (entry,) = converted_body.get_parameters()
    for target in entry.output(0).get_target_inputs():
        target.replace_source_output(joint.input_value(0))
    whole = openvino.Model(converted_body.get_results(), converted_head.get_parameters(),
                           "mixed")
    return _save_whole(whole, directory, keep_fp32=fp32_layers)


def _converted(model: torch.nn.Module, example: torch.Tensor) -> Any:
    """The eval-mode module converted to an OpenVINO model taking any batch and side."""
    import openvino

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the converter traces with TorchScript's warnings
        return openvino.convert_model(model.eval(), example_input=example,
                                      input=[(-1, example.shape[1], -1, -1)])


def _mark_fp32(model_file: Path, layers: set[str]) -> None:
    """Add the `precise` attribute to the named layers of a saved IR file, in place."""
    tree = ElementTree.parse(model_file)
    marked = 0
    for layer in tree.getroot().iter("layer"):
        if layer.get("name") not in layers:
            continue
        info = layer.find("rt_info")
        if info is None:
            info = ElementTree.Element("rt_info")
            layer.insert(1 if layer.find("data") is not None else 0, info)
        ElementTree.SubElement(info, "attribute", {"name": "precise", "version": "0"})
        marked += 1
    if marked != len(layers):
        raise RuntimeError(f"marked {marked} of the {len(layers)} fp32 layers in {model_file}: "
                           "the saved model lost layer names")
    tree.write(model_file, encoding="utf-8", xml_declaration=True)


def quantize_openvino(model_file: Path, *, calibration: Sequence[np.ndarray],
                      directory: Path, keep_stem: bool = False) -> Path:
    """The exported fp32 model quantized to int8 by NNCF's post-training quantization, its
    activation ranges calibrated on `calibration` ((1,3,H,W) float32 model inputs, each as
    the trunk receives them), saved in `directory`; returns the model file. Deterministic
    for the same model and inputs.

    With `keep_stem`, `model_file` is a mixed export (`export_mixed_openvino`) and its stem
    is left in fp32, the rest's biases corrected on the full statistics rather than NNCF's
    fast estimate (the bundled photos' worst cosine 0.985 against 0.9915); without, every
    layer is quantized with the fast estimate, as int8 spaces made before the stem was kept
    were, so their models are rebuilt byte for byte."""
    import nncf
    import openvino

    model = openvino.Core().read_model(str(model_file))
    stem = ({"ignored_scope": nncf.IgnoredScope(patterns=[f"^{re.escape(_FP32_PREFIX)}.*"]),
             "fast_bias_correction": False} if keep_stem else {})
    # NNCF draws its progress bars on stdout and logs there (the nodes it leaves out): both
    # sent to stderr, the caller's output (a command's --json) stays its own.
    with contextlib.redirect_stdout(sys.stderr), _nncf_log_on_stderr():
        quantized = nncf.quantize(model, nncf.Dataset(list(calibration)),
                                  preset=nncf.QuantizationPreset.PERFORMANCE,
                                  subset_size=len(calibration), **stem)
    return _save_whole(quantized, directory)


@contextlib.contextmanager
def _nncf_log_on_stderr() -> Iterator[None]:
    """NNCF's own log handler, which writes to the stdout of when it was imported, pointed
    at stderr for the block (handlers of other kinds, a file's or a test's, are left)."""
    handlers = [h for h in logging.getLogger("nncf").handlers
                if type(h) is logging.StreamHandler]
    streams = [h.setStream(sys.stderr) for h in handlers]
    try:
        yield
    finally:
        for handler, stream in zip(handlers, streams, strict=True):
            if stream is not None:
                handler.setStream(stream)


def _save_whole(model: Any, directory: Path, *, keep_fp32: set[str] | None = None) -> Path:
    """Save an OpenVINO model as `directory`/model.xml, the layers named in `keep_fp32`
    marked to run in fp32. The folder appears whole or not at all (written beside it, then
    renamed), so concurrent exports of the same model leave one complete copy."""
    import openvino

    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=directory.parent, prefix=f".{directory.name}."))
    try:
        openvino.save_model(model, staging / _MODEL_FILE, compress_to_fp16=False)
        if keep_fp32:
            _mark_fp32(staging / _MODEL_FILE, keep_fp32)
        os.rename(staging, directory)
    except OSError:
        if not (directory / _MODEL_FILE).is_file():
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return directory / _MODEL_FILE


def exported_model(directory: Path) -> Path | None:
    """The OpenVINO model file exported into `directory`, or None when there is none."""
    path = directory / _MODEL_FILE
    return path if path.is_file() else None


class OpenVinoTrunk:
    """A compiled OpenVINO trunk, called like the torch module: (N,3,H,W) float32 pixels,
    normalised, to (N,C,h,w) float32 feature maps. Each calling thread gets its own infer
    requests, so threads may call it at once.

    The exported model takes any shape, but OpenVINO runs a model compiled for one fixed
    shape faster (`lookalike bench speed` prints both), so each input shape gets a model of
    its own, compiled at its first call, for the first `static_shapes` shapes seen; later
    shapes run through the dynamic model. Each compiled model holds its own buffers (more
    for larger batches), hence the bound."""

    def __init__(self, model: Any, *, engine: str, config: dict[str, Any],
                 static_shapes: int) -> None:
        self._model = model
        self._config = config
        self._dynamic = _compile(model, config)
        self._static: dict[tuple[int, ...], Any] = {}
        self._static_most = static_shapes
        self._compiling = threading.Lock()
        self._local = threading.local()
        self.engine = engine

    def __call__(self, inputs: torch.Tensor) -> torch.Tensor:
        pixels = np.ascontiguousarray(inputs.detach().cpu().numpy(), dtype=np.float32)
        outputs = self._request(pixels.shape).infer([pixels], share_inputs=True,
                                                    share_outputs=False)
        return torch.from_numpy(np.asarray(outputs[0]))

    def _request(self, shape: tuple[int, ...]) -> Any:
        """This thread's infer request of the model that runs `shape` (its own, or the
        dynamic one)."""
        compiled = self._compiled_for(shape)
        requests: dict[int, Any] = self._local.__dict__.setdefault("requests", {})
        request = requests.get(id(compiled))
        if request is None:
            request = requests[id(compiled)] = compiled.create_infer_request()
        return request

    @property
    def threads(self) -> int:
        """The threads one call runs on."""
        return int(self._config["INFERENCE_NUM_THREADS"])

    @property
    def static_shapes(self) -> list[tuple[int, ...]]:
        """The input shapes that have a model compiled for them, in the order first seen."""
        return list(self._static)

    def _compiled_for(self, shape: tuple[int, ...]) -> Any:
        """The model compiled for `shape` (compiled now if new and there is room), else the
        dynamic one."""
        with self._compiling:
            compiled = self._static.get(shape)
            if compiled is None and len(self._static) < self._static_most:
                fixed = self._model.clone()
                fixed.reshape(list(shape))
                compiled = self._static[shape] = _compile(fixed, self._config)
        return self._dynamic if compiled is None else compiled


def load_openvino(model_file: Path, *, engine: str, threads: int, static_shapes: int,
                  bf16: bool = True) -> OpenVinoTrunk:
    """The exported trunk compiled for this CPU with `threads` threads, in the engine's
    precision (openvino-bf16, openvino-fp32, openvino-mixed: bf16 but for its marked fp32
    layers, or openvino-int8: its quantized layers in int8, the rest in fp32), all fp32
    where `bf16` is False, tuned for latency, not pinned to cores, with up to
    `static_shapes` shapes compiled on their own."""
    import openvino

    precision = _PRECISION[engine] if bf16 else "f32"
    # Pinning held the calling thread to the plugin's choice of cores during each call: core
    # 0 in every process, so two processes running a model (`serve --workers 2`) shared one
    # core of two at half speed each.
    config = {"INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": precision,
              "PERFORMANCE_HINT": "LATENCY", "ENABLE_CPU_PINNING": False}
    return OpenVinoTrunk(openvino.Core().read_model(str(model_file)), engine=engine,
                         config=config, static_shapes=static_shapes)


def _compile(model: Any, config: dict[str, Any]) -> Any:
    """`model` compiled for the CPU with `config`, the calling thread's signal stack kept."""
    import openvino

    with _signal_stack_kept():
        return openvino.Core().compile_model(model, "CPU", config)


class _SignalStack(ctypes.Structure):
    """C's stack_t, as sigaltstack(2) reads and writes it."""

    _fields_ = [("ss_sp", ctypes.c_void_p), ("ss_flags", ctypes.c_int),
                ("ss_size", ctypes.c_size_t)]


@contextlib.contextmanager
def _signal_stack_kept() -> Iterator[None]:
    """Put back the thread's alternate signal stack after the block.

    Compiling a model makes OpenVINO's CPU plugin (2026.4) install its own alternate signal
    stack on the calling thread, remembering the previous one; freeing the model puts that
    previous one back. Two models freed in another order than made leave the thread's
    alternate stack pointing at freed memory, and the next signal handled there (a child
    process exiting, with a SIGCHLD handler set) kills the process with SIGSEGV. Undoing the
    install at once makes every model remember, and restore, the same live stack.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    before = _SignalStack()
    if libc.sigaltstack(None, ctypes.byref(before)) != 0:
        raise OSError(ctypes.get_errno(), "sigaltstack could not be read")
    try:
        yield
    finally:
        if libc.sigaltstack(ctypes.byref(before), None) != 0:
            raise OSError(ctypes.get_errno(), "sigaltstack could not be restored")
