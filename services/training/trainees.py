"""What a fine-tuning job trains, built from its request: the network, its training data,
how it is validated, and the space definition its trained weights make."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from lookalike.retrieval.embedding.embedder import native_bf16
from lookalike.retrieval.evaluation.metrics import label_map
from lookalike.retrieval.models.registry import (
    BackboneSpec,
    get_backbone,
    load_model,
    resolve_weights,
)
from lookalike.retrieval.training.heads import ProjectionHead
from lookalike.retrieval.training.network import EmbeddingNet, freeze_blocks
from lookalike.retrieval.training.vectornet import VectorNet
from lookalike.services.catalog.documents import HeadOptions, SpaceOptions
from lookalike.services.catalog.schemas import SpaceCreate
from lookalike.services.config import Settings
from lookalike.services.runtime import Runtime
from lookalike.services.spaces.lookup import find_space
from lookalike.services.spaces.model_store import store_state
from lookalike.services.training.data import (
    CopyViews,
    LabelledImages,
    StoredImages,
    cached_vectors,
)
from lookalike.services.training.request import FinetuneRequest

VALIDATION_BATCH = 128
Publish = Callable[[Settings, str], SpaceCreate]


@dataclass(frozen=True)
class Trainee:
    """A network ready for `fit`, its data, its validation mAP, and how to publish it."""

    model: nn.Module
    train_set: Dataset[tuple[torch.Tensor, int]]
    validate: Callable[[nn.Module], float]
    bf16: bool
    publish: Publish


def build_trainee(runtime: Runtime, request: FinetuneRequest, data: LabelledImages) -> Trainee:
    """The head or backbone trainee of a request, its new layers initialised from the
    request's seed (so a rerun starts identically) without touching the process's RNG."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(request.seed)
        if request.method == "head":
            return _head_trainee(runtime, request, data)
        if request.method == "self-supervised":
            return _self_supervised_trainee(runtime, request, data)
        return _backbone_trainee(runtime, request, data)


def _classes(request: FinetuneRequest, data: LabelledImages) -> int | None:
    """A classifier's width for the softmax loss; metric losses need none."""
    return len(data.classes) if request.loss == "softmax" else None


def _head_trainee(runtime: Runtime, request: FinetuneRequest, data: LabelledImages) -> Trainee:
    """A projection head over a space's cached vectors: no image is decoded."""
    with runtime.read_session() as session:
        base = find_space(session=session, name=request.base_space)
        session.expunge(base)
    train = cached_vectors(runtime, space_id=base.id, split=data.train)
    val = torch.from_numpy(cached_vectors(runtime, space_id=base.id, split=data.val))
    assert request.out_dim is not None, "FinetuneRequest gives a head an out_dim"
    head = ProjectionHead(base.dim, request.out_dim, hidden=request.hidden)
    model = VectorNet(head, classes=_classes(request, data))
    train_set = TensorDataset(torch.from_numpy(train), torch.from_numpy(data.train.labels))

    def validate(net: nn.Module) -> float:
        with _evaluating(net), torch.inference_mode():
            return label_map(net(val).numpy(), data.val.labels)

    def publish(settings: Settings, name: str) -> SpaceCreate:
        path, sha = store_state(head, prefix="head", settings=settings)
        options = base.options.model_copy(
            update={"head": _head_options(settings.layout.stored(path), sha, head, request)})
        return SpaceCreate(name=name, backbone=base.backbone, weights_sha256=base.weights_sha256,
                           layer=base.layer, pooling=base.pooling, whitening=base.whitening,
                           dim=request.out_dim, options=options, make_default=False)

    return Trainee(model, train_set, validate, bf16=False, publish=publish)


def _head_options(stored: str, sha: str, head: ProjectionHead,
                  request: FinetuneRequest) -> HeadOptions:
    return HeadOptions(file=stored, sha256=sha, in_dim=head.in_dim,
                       out_dim=request.out_dim, hidden=request.hidden)


def _initial_weights(spec: BackboneSpec, choice: str, settings: Settings) -> Path | None:
    """The file a backbone starts from: the registry's ('pretrained'), none (random, for
    training from scratch), or a given file."""
    if choice == "none":
        return None
    explicit = None if choice == "pretrained" else Path(choice)
    return resolve_weights(spec, explicit=explicit, torch_home=settings.torch_home)


@dataclass(frozen=True)
class _Network:
    """A registry network, the EmbeddingNet on its trunk, and the input size they train at."""

    spec: BackboneSpec
    network: nn.Module
    model: EmbeddingNet
    size: int


def _build_network(runtime: Runtime, request: FinetuneRequest, classes: int | None) -> _Network:
    """The request's registry network (frozen blocks applied) and its EmbeddingNet."""
    spec = get_backbone(request.backbone)
    network = load_model(spec, weights=_initial_weights(spec, request.weights, runtime.settings))
    trunk = spec.trunk(network)
    freeze_blocks(trunk, request.frozen_blocks)
    model = EmbeddingNet(trunk, trunk_dim=spec.dim, mean=spec.weights.mean, std=spec.weights.std,
                         pooling=request.pooling, out_dim=request.out_dim, hidden=request.hidden,
                         classes=classes)
    return _Network(spec, network, model, request.input_size or spec.weights.input_size)


def _network_publish(net: _Network, request: FinetuneRequest) -> Publish:
    """Store the trained network (and head) by sha256 and define the space they make."""
    spec, model, size = net.spec, net.model, net.size

    def publish(settings: Settings, name: str) -> SpaceCreate:
        path, sha = store_state(net.network, prefix=spec.name, settings=settings)
        options = SpaceOptions(weights_file=settings.layout.stored(path), gem_p=model.gem_p,
                               scales=[1.0], index_factory="Flat", input_size=size)
        dim = spec.dim
        if model.head is not None:
            head_path, head_sha = store_state(model.head, prefix="head", settings=settings)
            options.head = _head_options(settings.layout.stored(head_path), head_sha,
                                         model.head, request)
            dim = model.head.out_dim
        return SpaceCreate(name=name, backbone=spec.name, weights_sha256=sha,
                           layer=spec.feature_layer, pooling=request.pooling, whitening=None,
                           dim=dim, options=options, make_default=False)

    return publish


def _bf16(request: FinetuneRequest) -> bool:
    return native_bf16() if request.bf16 is None else request.bf16


def _backbone_trainee(runtime: Runtime, request: FinetuneRequest,
                      data: LabelledImages) -> Trainee:
    """A registry network trained end to end on the stored images, with augmentation."""
    net = _build_network(runtime, request, _classes(request, data))
    train_set = StoredImages(data.train, size=net.size)
    val_set = StoredImages(data.val, size=net.size)

    def validate(model: nn.Module) -> float:
        return label_map(_embed(model, val_set), data.val.labels)

    return Trainee(net.model, train_set, validate, bf16=_bf16(request),
                   publish=_network_publish(net, request))


def _self_supervised_trainee(runtime: Runtime, request: FinetuneRequest,
                             data: LabelledImages) -> Trainee:
    """A registry network trained for copy detection on unlabelled stored images; validated
    by the mAP of finding each validation image from one fixed copy view of it."""
    net = _build_network(runtime, request, None)
    train_set = StoredImages(data.train, size=net.size)
    val_set = StoredImages(data.val, size=net.size)
    copies = CopyViews(val_set, seed=request.seed)
    labels = np.concatenate([data.val.labels, data.val.labels])

    def validate(model: nn.Module) -> float:
        return label_map(np.concatenate([_embed(model, val_set), _embed(model, copies)]), labels)

    return Trainee(net.model, train_set, validate, bf16=_bf16(request),
                   publish=_network_publish(net, request))


def _embed(net: nn.Module, images: Dataset[tuple[torch.Tensor, int]]) -> np.ndarray:
    """(N, D) vectors of a dataset's images, in order, with the network in eval mode."""
    loader = DataLoader(images, batch_size=VALIDATION_BATCH, shuffle=False)
    with _evaluating(net), torch.inference_mode():
        return np.concatenate([net(pixels).float().numpy() for pixels, _ in loader])


class _evaluating:  # noqa: N801 - used like contextlib's lower-case context managers
    """Eval mode inside the block, the previous mode after it."""

    def __init__(self, net: nn.Module) -> None:
        self.net = net
        self.was_training = net.training

    def __enter__(self) -> None:
        self.net.eval()

    def __exit__(self, *_: object) -> None:
        self.net.train(self.was_training)

