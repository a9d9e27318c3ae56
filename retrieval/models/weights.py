"""Where a backbone's weight file comes from, and whether a file fits the backbone."""

from __future__ import annotations

import hashlib
import importlib.util
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from lookalike.retrieval.atomic import write_atomic
from lookalike.retrieval.errors import WeightsMismatch, WeightsNotFound
from lookalike.retrieval.models.specs import BackboneSpec

_CHUNK = 1 << 20


@dataclass(frozen=True)
class _Place:
    """One place a weight file may be: a path, or a description of why there is none."""

    label: str
    path: Path | None


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file, read in chunks so large weight files stay out of memory."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def cache_path(spec: BackboneSpec, *, torch_home: Path) -> Path:
    """Torchvision's cache location for this backbone's weights under `torch_home`."""
    return torch_home / "hub" / "checkpoints" / spec.weights.filename


def _package_place(module: str, inner: str) -> _Place:
    """The file `inner` inside the installed package `module`, found without importing it."""
    found = importlib.util.find_spec(module)
    if found is None or not found.submodule_search_locations:
        return _Place(f"python package {module} (not installed)", None)
    path = Path(next(iter(found.submodule_search_locations))) / inner
    return _Place(str(path), path)


def _places(spec: BackboneSpec, *, explicit: Path | None, torch_home: Path) -> list[_Place]:
    """Every place looked for weights, in resolution order."""
    places = [] if explicit is None else [_Place(str(explicit), explicit)]
    if not spec.weights.pretrained:
        return places
    cached = cache_path(spec, torch_home=torch_home)
    places.append(_Place(str(cached), cached))
    places.extend(_package_place(module, inner) for module, inner in spec.weights.packages)
    return places


def weight_candidates(spec: BackboneSpec, *, explicit: Path | None, torch_home: Path) -> list[Path]:
    """Candidate files in order: explicit file, torchvision's cache, offline weight packages."""
    places = _places(spec, explicit=explicit, torch_home=torch_home)
    return [place.path for place in places if place.path is not None]


def verify_checksum(spec: BackboneSpec, path: Path) -> None:
    """Raise WeightsMismatch when `path` does not hash to the registry's sha256 prefix."""
    prefix = spec.weights.sha256_prefix
    if prefix is None:
        return
    actual = file_sha256(path)
    if not actual.startswith(prefix):
        raise WeightsMismatch(
            f"weight file {path} has sha256 {actual}; backbone '{spec.name}' "
            f"{spec.weights.name} expects a sha256 starting with {prefix}"
        )


def resolve_weights(spec: BackboneSpec, *, explicit: Path | None, torch_home: Path) -> Path:
    """First existing candidate file; an explicit path must exist; registry files are verified.

    An explicit file is the caller's choice (fine-tuned weights, say) and is not checked against
    the registry checksum; cached and packaged files are, and a mismatch raises WeightsMismatch.
    """
    if explicit is not None and not explicit.is_file():
        raise WeightsNotFound(spec.name, [f"{explicit} (explicit weight file does not exist)"])
    if explicit is not None:
        return explicit
    if not spec.weights.pretrained:
        raise WeightsNotFound(spec.name, [], reason=_untrained_reason(spec))
    places = _places(spec, explicit=None, torch_home=torch_home)
    for place in places:
        if place.path is not None and place.path.is_file():
            verify_checksum(spec, place.path)
            return place.path
    raise WeightsNotFound(spec.name, [place.label for place in places])


def _untrained_reason(spec: BackboneSpec) -> str:
    """Why a backbone without pretrained weights resolves nothing, and what to do."""
    return (
        f"backbone '{spec.name}' has no pretrained weights: train it first (`lookalike "
        f"finetune --backbone {spec.name} --weights none`) or pass a trained weight file "
        "with --weights FILE"
    )


def read_state_dict(path: Path) -> Mapping[str, torch.Tensor]:
    """Tensors of a weight file, loaded safely (weights_only); WeightsMismatch if it is not one."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch.load fails in many ways on a file that is not weights
        raise WeightsMismatch(
            f"weight file {path} is not a readable state dict: {error}"
        ) from error
    if not isinstance(state, Mapping) or not all(
        isinstance(value, torch.Tensor) for value in state.values()
    ):
        raise WeightsMismatch(f"weight file {path} does not hold a state dict of tensors")
    return state


def load_into(model: torch.nn.Module, path: Path, *, backbone: str,
              training_only: tuple[str, ...] = ()) -> torch.nn.Module:
    """Load `path` strictly into `model`; WeightsMismatch names the file and the backbone.
    Keys under the `training_only` prefixes (auxiliary classifiers) are left out first."""
    state = read_state_dict(path)
    if training_only:
        state = {key: value for key, value in state.items() if not key.startswith(training_only)}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        summary = str(error).splitlines()[0]
        raise WeightsMismatch(
            f"weight file {path} does not match the '{backbone}' architecture: {summary}"
        ) from error
    return model


def _copy_atomically(source: Path, target: Path) -> None:
    """Copy `source` to `target` through a fsynced temporary file and a rename."""
    with source.open("rb") as src:
        write_atomic(target, lambda out: shutil.copyfileobj(src, out, _CHUNK))


def install_weights(source: Path, *, spec: BackboneSpec, torch_home: Path) -> Path:
    """Check `source` fits the backbone and its checksum, then copy it into torchvision's cache."""
    if not source.is_file():
        raise WeightsNotFound(spec.name, [f"{source} (weight file to install does not exist)"])
    if not spec.weights.pretrained:
        raise WeightsNotFound(spec.name, [], reason=_untrained_reason(spec))
    load_into(spec.builder(), source, backbone=spec.name,
              training_only=spec.weights.training_only)
    verify_checksum(spec, source)
    target = cache_path(spec, torch_home=torch_home)
    _copy_atomically(source, target)
    return target
