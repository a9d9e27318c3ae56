"""The network that fine-tuning trains: backbone trunk, pooling, L2, optional head, classifier."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from lookalike.retrieval.embedding.pooling import pool
from lookalike.retrieval.errors import InvalidTrainingConfig, UnknownPooling
from lookalike.retrieval.models.registry import BackboneSpec, load_model
from lookalike.retrieval.training.heads import ProjectionHead
from lookalike.retrieval.training.vectornet import cosine_logits

POOLINGS = ("gap", "gem")
_GEM_EPS = 1e-6


class EmbeddingNet(nn.Module):
    """(N,3,S,S) uint8 pixels to unit-norm embeddings, computed exactly as `Embedder` does.

    trunk -> GAP or GeM (learnable p) -> L2 -> optional ProjectionHead (-> L2). `classifier`
    (with `classes`) gives the softmax loss its logits; it is dropped when the space is built.
    """

    shift: Tensor  # buffers: the input normalisation, moved with the module
    scale: Tensor

    def __init__(
        self,
        trunk: nn.Module,
        *,
        trunk_dim: int,
        mean: tuple[float, float, float],
        std: tuple[float, float, float],
        pooling: str = "gem",
        gem_p: float = 3.0,
        out_dim: int | None = None,
        hidden: int | None = None,
        classes: int | None = None,
    ) -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise UnknownPooling(
                f"unknown training pooling '{pooling}'; allowed: {', '.join(POOLINGS)}"
            )
        if classes is not None and classes < 2:
            raise InvalidTrainingConfig(f"a classifier needs 2 or more classes, got {classes}")
        self.trunk = trunk
        self.trunk_dim = trunk_dim
        self.pooling = pooling
        self.p = nn.Parameter(torch.tensor(float(gem_p)), requires_grad=pooling == "gem")
        self.head = None if out_dim is None else ProjectionHead(trunk_dim, out_dim, hidden=hidden)
        self.dim = trunk_dim if out_dim is None else out_dim
        self.classifier = None if classes is None else nn.Linear(self.dim, classes, bias=False)
        self.register_buffer("shift", torch.tensor(mean).mul(255.0).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(std).mul(255.0).view(1, 3, 1, 1))

    @property
    def gem_p(self) -> float:
        """GeM's exponent as a number (learned when pooling is 'gem')."""
        return float(self.p.detach())

    def forward(self, pixels: Tensor) -> Tensor:
        """(N,3,S,S) uint8 pixels to (N,dim) unit-norm float32 embeddings."""
        inputs = (pixels.float() - self.shift) / self.scale
        features = self.trunk(inputs).float()
        if self.pooling == "gem":
            pooled = features.clamp(min=_GEM_EPS).pow(self.p).mean(dim=(2, 3)).pow(1.0 / self.p)
        else:
            pooled = pool(features, method="gap")
        vectors = nn.functional.normalize(pooled, dim=1)
        return vectors if self.head is None else self.head(vectors)

    def logits(self, embeddings: Tensor) -> Tensor:
        """Scaled cosines to each class's weight (`vectornet.cosine_logits`, NormFace)."""
        return cosine_logits(embeddings, self.classifier)

    def train(self, mode: bool = True) -> EmbeddingNet:
        """Train mode, except BatchNorm layers whose parameters are frozen: they keep their
        running statistics (a frozen block stays what it was)."""
        super().train(mode)
        for module in self.trunk.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm) and not any(
                parameter.requires_grad for parameter in module.parameters()
            ):
                module.eval()
        return self


def trunk_blocks(trunk: nn.Module) -> list[nn.Module]:
    """The trunk's top-level blocks: a torchvision `features` sequence's children, a lone
    wrapped network's blocks, or the children (with ModuleLists such as EfficientNet's blocks
    spread out)."""
    features = getattr(trunk, "features", None)
    if isinstance(features, nn.Sequential):
        return list(features.children())
    children = list(trunk.children())
    if len(children) == 1 and not isinstance(children[0], nn.ModuleList):
        return trunk_blocks(children[0])
    blocks: list[nn.Module] = []
    for child in children:
        blocks.extend(child.children() if isinstance(child, nn.ModuleList) else [child])
    return blocks


def freeze_blocks(trunk: nn.Module, frozen: int) -> int:
    """Freeze the first `frozen` blocks of the trunk (`trunk_blocks`), unfreeze the rest;
    return how many trunk parameters (elements) stay trainable."""
    blocks = trunk_blocks(trunk)
    if not 0 <= frozen <= len(blocks):
        raise InvalidTrainingConfig(
            f"cannot freeze {frozen} blocks: this trunk has {len(blocks)} (use 0..{len(blocks)})"
        )
    for parameter in trunk.parameters():
        parameter.requires_grad_(True)
    for block in blocks[:frozen]:
        for parameter in block.parameters():
            parameter.requires_grad_(False)
    return sum(p.numel() for p in trunk.parameters() if p.requires_grad)


def build_network(
    spec: BackboneSpec,
    *,
    weights: Path | None,
    pooling: str = "gem",
    gem_p: float = 3.0,
    out_dim: int | None = None,
    hidden: int | None = None,
    classes: int | None = None,
) -> tuple[EmbeddingNet, nn.Module]:
    """(EmbeddingNet on the backbone's trunk, the whole backbone model sharing its weights).

    Save `model.state_dict()` after training: it is a weight file for `spec` (load_into);
    weights=None starts from random weights (training from scratch).
    """
    model = load_model(spec, weights=weights)
    net = EmbeddingNet(
        spec.trunk(model), trunk_dim=spec.dim, mean=spec.weights.mean, std=spec.weights.std,
        pooling=pooling, gem_p=gem_p, out_dim=out_dim, hidden=hidden, classes=classes,
    )
    return net, model
