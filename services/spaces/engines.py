"""The inference engine behind a space: its trunk, exported for the engine and kept under
the engine folder by the weights' sha256 (rebuilt when missing), and the engine new spaces
get by default: the fastest installed one whose vectors match eager fp32 torch's (never the
int8 engine, which a space gets only by name)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from lookalike.retrieval.embedding.embedder import (
    Embedder,
    EmbedderOptions,
    image_to_pixels,
    native_bf16,
    native_int8,
)
from lookalike.retrieval.errors import EngineUnavailable
from lookalike.retrieval.models.engine_names import (
    INT8_ENGINE,
    MIXED_ENGINE,
    OPT_IN_ENGINES,
    REFERENCE_ENGINE,
)
from lookalike.retrieval.models.engines import (
    OpenVinoTrunk,
    check_engine,
    export_mixed_openvino,
    export_openvino,
    exported_model,
    installed_engines,
    load_openvino,
    openvino_version,
    quantize_openvino,
)
from lookalike.retrieval.models.registry import BackboneSpec, load_feature_extractor
from lookalike.services.config import Settings
from lookalike.services.sample import bundled_photos
from lookalike.services.storage.files import write_atomic

logger = logging.getLogger(__name__)

# Lowest cosine, per photo, between an engine's vectors and eager fp32 torch's for the
# engine to be a default. bfloat16 (OpenVINO's or torch's) falls to ~0.991 on one bundled
# photo (a dark retina scan), so where it fails this a bf16 engine is chosen by name only;
# the mixed engine (the high-resolution stem in fp32) keeps ~0.9994. Its split is the
# backbone's `fp32_stem`, recorded with each space made with it: MobileNetV2's first 3
# modules since 2026-12-06 (with 2, the dark retina scan falls below 0.999), about
# a tenth faster than the 4 that spaces made before then keep running (README, "Speed").
MATCH_COSINE = 0.999
# The int8 engine's calibration: this many crops of the bundled photos (0.3 to all of each
# photo's side, drawn with CALIBRATION_SEED), the activations NNCF sets int8 ranges from.
# Crops down to a tenth of the side gave a lower worst cosine (0.956 against 0.966), whole
# photos too (0.961).
CALIBRATION_CROPS = 300
CALIBRATION_SEED = 0
INT8_PART = f"int8-c{CALIBRATION_CROPS}s{CALIBRATION_SEED}"  # its folder, per calibration


def export_directory(settings: Settings, *, spec: BackboneSpec, weights_sha256: str,
                     part: str = "") -> Path:
    """The folder holding the backbone exported for OpenVINO (per weights and version);
    `part` names a variant of it (the mixed engine's, per split; the int8 engine's)."""
    name = f"{spec.name}-{weights_sha256}-openvino{openvino_version()}"
    return settings.engine_dir / (f"{name}-{part}" if part else name)


def mixed_part(fp32_stem: int) -> str:
    """The export folder suffix of the mixed engine's model whose first `fp32_stem` modules
    run in fp32: per split point, so each split has its export."""
    return f"mixed{fp32_stem}"


def int8_part(fp32_stem: int) -> str:
    """The export folder suffix of the int8 engine's model whose first `fp32_stem` modules
    stay unquantized (0: every layer quantized, the folder int8 spaces made before the
    split was recorded keep)."""
    return f"{INT8_PART}-stem{fp32_stem}" if fp32_stem else INT8_PART


def engine_trunk(engine: str, *, spec: BackboneSpec, weights: Path, weights_sha256: str,
                 settings: Settings, fp32_stem: int | None = None,
                 int8_fp32_stem: int | None = None) -> nn.Module | OpenVinoTrunk:
    """The trunk that `engine` runs: the torch module (run as the settings say: bf16 where
    native unless set), or the OpenVINO model compiled from its export (exported first when
    the folder lacks it): for the mixed engine, the first `fp32_stem` modules (None: the
    backbone's split; a space passes the one it was made with) in fp32 and the rest in
    bf16, or in fp32 too on a CPU without native bf16, so that a space made where it runs is
    served anywhere OpenVINO is (its vectors match fp32's, which is what made it a default);
    for the int8 engine, all but the first `int8_fp32_stem` modules (None: the backbone's)
    in int8, with a warning on a CPU without VNNI or AMX (`native_int8`)."""
    stem_modules = spec.fp32_stem if fp32_stem is None else fp32_stem
    bf16 = True
    if engine == MIXED_ENGINE and MIXED_ENGINE not in installed_engines():
        check_engine("openvino-fp32")
        logger.warning("engine %s runs its bfloat16 part in fp32 on this CPU, which has no "
                       "native bfloat16: the same vectors to cosine %s, more slowly",
                       MIXED_ENGINE, MATCH_COSINE)
        bf16 = False
    else:
        check_engine(engine)
    if engine == MIXED_ENGINE and not stem_modules:
        raise EngineUnavailable(f"backbone {spec.name} has no {MIXED_ENGINE} engine (no fp32 "
                                "stem measured for it); use openvino-fp32 or openvino-bf16")

    def model() -> nn.Module:
        """The torch trunk: the reference engine's, or the one to export, built only when an
        export is missing, so a process serving a kept export never builds (or imports) the
        torchvision network."""
        return load_feature_extractor(spec, weights=weights)

    if engine == REFERENCE_ENGINE:
        return model()
    example = torch.zeros(1, 3, spec.weights.input_size, spec.weights.input_size)
    if engine == INT8_ENGINE:
        if not native_int8():
            logger.warning("engine %s on a CPU without VNNI or AMX: its int8 sums saturate, so "
                           "its vectors stray further from fp32's than elsewhere (cosine 0.961 "
                           "at worst on the bundled photos on Zen 1 and Zen 3 hosts, 0.9915 with "
                           "VNNI); `lookalike bench speed` shows whether it is faster than "
                           "openvino-fp32 here", INT8_ENGINE)
        return _quantized(model, spec=spec, example=example, weights_sha256=weights_sha256,
                          settings=settings,
                          stem=spec.int8_fp32_stem if int8_fp32_stem is None else int8_fp32_stem)
    if engine != MIXED_ENGINE:
        return _compiled(model, engine, example=example, settings=settings,
                         directory=export_directory(settings, spec=spec,
                                                    weights_sha256=weights_sha256))
    model_file = _mixed_export(model, spec=spec, stem=stem_modules, example=example,
                               weights_sha256=weights_sha256, settings=settings)
    return _loaded(model_file, MIXED_ENGINE, settings, bf16=bf16)


def _mixed_export(model: Callable[[], nn.Module], *, spec: BackboneSpec, stem: int,
                  example: torch.Tensor, weights_sha256: str, settings: Settings) -> Path:
    """The model file of the trunk exported with its first `stem` modules marked fp32,
    exported first when missing."""
    return _kept(
        export_directory(settings, spec=spec, weights_sha256=weights_sha256,
                         part=mixed_part(stem)),
        lambda directory: export_mixed_openvino(model(), stem=stem, example=example,
                                                directory=directory),
        f"exporting {spec.name} for OpenVINO, its first {stem} modules kept in fp32,")


def _compiled(model: Callable[[], nn.Module], engine: str, *, example: torch.Tensor,
              directory: Path, settings: Settings) -> OpenVinoTrunk:
    """`model` compiled for `engine` from its export in `directory` (exported first when
    the folder lacks it)."""
    return _loaded(_exported(model, example=example, directory=directory), engine, settings)


def _exported(model: Callable[[], nn.Module], *, example: torch.Tensor, directory: Path
              ) -> Path:
    """The model file of the export in `directory` of the trunk `model` builds, exported
    first when missing."""
    return _kept(directory, lambda folder: export_openvino(model(), example=example,
                                                           directory=folder),
                 "exporting the trunk for OpenVINO")


def _kept(directory: Path, make: Callable[[Path], Path], doing: str) -> Path:
    """The model file kept in `directory`, made there first by `make` when it is missing
    (`doing` says how, in the log)."""
    model_file = exported_model(directory)
    if model_file is None:
        logger.info("%s into %s", doing, directory)
        model_file = make(directory)
    return model_file


def _loaded(model_file: Path, engine: str, settings: Settings, *,
            bf16: bool = True) -> OpenVinoTrunk:
    """An exported model compiled for `engine` (in fp32 throughout unless `bf16`) with the
    settings' threads and shapes."""
    return load_openvino(model_file, engine=engine, threads=settings.torch_threads or 1,
                         static_shapes=settings.engine_static_shapes, bf16=bf16)


def _quantized(model: Callable[[], nn.Module], *, spec: BackboneSpec, example: torch.Tensor,
               weights_sha256: str, settings: Settings, stem: int) -> OpenVinoTrunk:
    """The int8 engine: the fp32 export, or with a `stem` the export with that many modules
    marked fp32 (made first when missing), quantized with `calibration_inputs` but for that
    stem, kept in a folder of its own (made first when missing)."""
    def quantize(directory: Path) -> Path:
        source = (_mixed_export(model, spec=spec, stem=stem, example=example,
                                weights_sha256=weights_sha256, settings=settings) if stem
                  else _exported(model, example=example, directory=export_directory(
                      settings, spec=spec, weights_sha256=weights_sha256)))
        return quantize_openvino(source, calibration=calibration_inputs(spec),
                                 directory=directory, keep_stem=bool(stem))
    model_file = _kept(
        export_directory(settings, spec=spec, weights_sha256=weights_sha256,
                         part=int8_part(stem)),
        quantize, f"quantizing {spec.name} to int8 ({CALIBRATION_CROPS} calibration crops, "
                  f"its first {stem} modules kept in fp32)")
    return _loaded(model_file, INT8_ENGINE, settings)


def calibration_inputs(spec: BackboneSpec) -> list[np.ndarray]:
    """CALIBRATION_CROPS (1,3,S,S) float32 model inputs: crops of the bundled photos, each
    squashed to the input side and normalised as the embedder does; the same every call."""
    rng = np.random.default_rng(CALIBRATION_SEED)
    photos = [photo.image for photo in bundled_photos()]
    size = spec.weights.input_size
    mean = np.asarray(spec.weights.mean, dtype=np.float32).reshape(1, 3, 1, 1) * 255
    std = np.asarray(spec.weights.std, dtype=np.float32).reshape(1, 3, 1, 1) * 255
    inputs = []
    for number in range(CALIBRATION_CROPS):
        crop = _random_crop(photos[number % len(photos)], rng)
        pixels = image_to_pixels(crop, size=size).numpy()[None].astype(np.float32)
        inputs.append((pixels - mean) / std)
    return inputs


def _random_crop(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A crop of 0.3 to all of the image's width and height, placed at random."""
    width, height = image.size
    share = float(rng.uniform(0.3, 1.0))
    cut_w, cut_h = max(1, int(width * share)), max(1, int(height * share))
    left = int(rng.integers(0, width - cut_w + 1))
    top = int(rng.integers(0, height - cut_h + 1))
    return image.crop((left, top, left + cut_w, top + cut_h))


def reference_vectors(*, spec: BackboneSpec, weights: Path) -> np.ndarray:
    """The eager fp32 torch model's vectors of the bundled photos: what engines must match."""
    reference = Embedder(load_feature_extractor(spec, weights=weights), spec=spec,
                         options=EmbedderOptions(bf16=False))
    return reference.embed_images([photo.image for photo in bundled_photos()])


def engine_agreement(engine: str, *, spec: BackboneSpec, weights: Path, weights_sha256: str,
                     settings: Settings, reference: np.ndarray | None = None) -> float:
    """The lowest cosine, over the bundled photos, between the vectors `engine` makes (run
    as the service runs it; in calls of one image, a query's, unless `forward_batch` is
    set) and `reference` (default: `reference_vectors`)."""
    if reference is None:
        reference = reference_vectors(spec=spec, weights=weights)
    trunk = engine_trunk(engine, spec=spec, weights=weights, weights_sha256=weights_sha256,
                         settings=settings)
    candidate = Embedder(trunk, spec=spec, options=EmbedderOptions(
        forward_batch=settings.forward_batch or 1, channels_last=settings.channels_last,
        bf16=native_bf16() if settings.bf16 is None else settings.bf16,
        frozen_graph=settings.frozen_graph))
    vectors = candidate.embed_images([photo.image for photo in bundled_photos()])
    return float(np.sum(reference * vectors, axis=1).min())


def default_engine(*, spec: BackboneSpec, weights: Path, weights_sha256: str,
                   settings: Settings) -> str:
    """The engine of a new space: the configured one, else the fastest installed engine whose
    vectors match the reference (`MATCH_COSINE`), opt-in engines (int8) left out; the verdict
    is kept beside the export."""
    if settings.engine is not None:
        check_engine(settings.engine)
        return settings.engine
    reference: list[np.ndarray] = []
    for engine in installed_engines():
        if engine == REFERENCE_ENGINE:
            return engine
        if engine in OPT_IN_ENGINES or (engine == MIXED_ENGINE and not spec.fp32_stem):
            continue
        cosine = kept_agreement(engine, spec=spec, weights=weights,
                                weights_sha256=weights_sha256, settings=settings,
                                reference=reference)
        if cosine >= MATCH_COSINE:
            return engine
        logger.info("engine %s is not the default here: its vectors reach cosine %.5f to "
                    "torch's on the bundled photos, below %s", engine, cosine, MATCH_COSINE)
    return REFERENCE_ENGINE


def kept_agreement(engine: str, *, spec: BackboneSpec, weights: Path, weights_sha256: str,
                   settings: Settings, reference: list[np.ndarray]) -> float:
    """`engine_agreement`, read from the export's folder when measured there before, else
    measured (the reference computed into `reference` once, for the caller's next engines)
    and written there."""
    part = {MIXED_ENGINE: mixed_part(spec.fp32_stem),
            INT8_ENGINE: int8_part(spec.int8_fp32_stem)}.get(engine, "")
    directory = export_directory(settings, spec=spec, weights_sha256=weights_sha256, part=part)
    kept = directory / f"agreement-{engine}.txt"
    if kept.is_file():
        return float(kept.read_text())
    if not reference:
        reference.append(reference_vectors(spec=spec, weights=weights))
    cosine = engine_agreement(engine, spec=spec, weights=weights,
                              weights_sha256=weights_sha256, settings=settings,
                              reference=reference[0])
    write_atomic(kept, f"{cosine:.6f}\n".encode())
    return cosine
