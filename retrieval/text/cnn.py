"""The text CNN (Kim, 2014): token embeddings, parallel 1-D convolutions of several widths,
max-over-time pooling, dropout and a linear layer whose softmax is over the topics."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional

from lookalike.retrieval.text.tokenizer import PAD_ID


@dataclass(frozen=True)
class TextCNNConfig:
    vocab_size: int
    classes: int
    embed_dim: int = 128
    widths: tuple[int, ...] = (3, 4, 5)
    channels: int = 100
    dropout: float = 0.5

    def to_dict(self) -> dict[str, object]:
        return {**asdict(self), "widths": list(self.widths)}


def max_over_time(maps: Tensor, lengths: Tensor, width: int) -> Tensor:
    """(N, C, T) feature maps of a width-`width` convolution -> (N, C): each channel's
    largest value over the windows that start inside the text (those that read only
    padding are left out; a text shorter than the window keeps its first one)."""
    valid = torch.clamp(lengths - width + 1, min=1)
    positions = torch.arange(maps.shape[-1], device=maps.device)
    mask = positions.unsqueeze(0) < valid.unsqueeze(1)
    return maps.masked_fill(~mask.unsqueeze(1), float("-inf")).amax(dim=-1)


class TextCNN(nn.Module):
    """ids (N, L) -> features (N, channels * len(widths)); `logits` maps features to topics.

    Inputs shorter than the widest filter are padded to it with the padding id."""

    def __init__(self, config: TextCNNConfig) -> None:
        super().__init__()
        self.config = config
        self.embedding = nn.Embedding(config.vocab_size, config.embed_dim, padding_idx=PAD_ID)
        self.convs = nn.ModuleList(nn.Conv1d(config.embed_dim, config.channels, width)
                                   for width in config.widths)
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(config.channels * len(config.widths), config.classes)

    def forward(self, ids: Tensor) -> Tensor:
        widest = max(self.config.widths)
        if ids.shape[1] < widest:
            ids = functional.pad(ids, (0, widest - ids.shape[1]), value=PAD_ID)
        lengths = (ids != PAD_ID).sum(dim=1)
        embedded = self.embedding(ids).transpose(1, 2)
        pooled = [max_over_time(functional.relu(conv(embedded)), lengths, width)
                  for conv, width in zip(self.convs, self.config.widths, strict=True)]
        return torch.cat(pooled, dim=1)

    def logits(self, features: Tensor) -> Tensor:
        logits: Tensor = self.classifier(self.dropout(features))
        return logits

    def probabilities(self, ids: Tensor) -> Tensor:
        """(N, classes) softmax over the topics, in eval mode and without gradients."""
        self.eval()
        with torch.inference_mode():
            return torch.softmax(self.logits(self(ids)), dim=1)

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.parameters())
