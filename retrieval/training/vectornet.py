"""A projection head trained on cached vectors, with the classifier the softmax loss needs."""

from __future__ import annotations

from torch import Tensor, nn

from lookalike.retrieval.errors import InvalidTrainingConfig
from lookalike.retrieval.training.heads import ProjectionHead

SOFTMAX_SCALE = 16.0


def cosine_logits(embeddings: Tensor, classifier: nn.Linear | None) -> Tensor:
    """SOFTMAX_SCALE x cosine to each class's normalised weight (NormFace): unit-norm
    embeddings through a plain linear layer give logits too small to train on."""
    if classifier is None:
        raise InvalidTrainingConfig("this network has no classifier: build it with classes=")
    weight = nn.functional.normalize(classifier.weight, dim=1)
    return SOFTMAX_SCALE * nn.functional.linear(embeddings.float(), weight)


class VectorNet(nn.Module):
    """(N, in_dim) vectors -> the head's unit-norm embeddings; `classifier` only for softmax."""

    def __init__(self, head: ProjectionHead, *, classes: int | None = None) -> None:
        super().__init__()
        if classes is not None and classes < 2:
            raise InvalidTrainingConfig(f"a classifier needs 2 or more classes, got {classes}")
        self.head = head
        self.classifier = None if classes is None else nn.Linear(head.out_dim, classes,
                                                                 bias=False)

    def forward(self, vectors: Tensor) -> Tensor:
        projected: Tensor = self.head(vectors)
        return projected

    def logits(self, embeddings: Tensor) -> Tensor:
        return cosine_logits(embeddings, self.classifier)
