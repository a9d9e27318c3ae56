"""A WordPiece tokenizer (Hugging Face `tokenizers`) trained on the corpus it will encode."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

from lookalike.retrieval.errors import InvalidTrainingConfig

PAD, UNK = "[PAD]", "[UNK]"
PAD_ID = 0


def _empty_tokenizer(model: models.Model) -> Tokenizer:
    """A tokenizer around `model` that lower-cases and splits like BERT."""
    tokenizer = Tokenizer(model)
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    return tokenizer


class TextTokenizer:
    """Lower-cased WordPiece ids, padded with id 0 to the longest text of a batch (at least
    `min_length`) and cut at `max_length`."""

    def __init__(self, tokenizer: Tokenizer, *, max_length: int, min_length: int = 1) -> None:
        if tokenizer.token_to_id(PAD) != PAD_ID:
            raise InvalidTrainingConfig(f"the tokenizer's padding token {PAD} must have id 0")
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.min_length = min_length
        tokenizer.no_padding()
        tokenizer.enable_truncation(max_length)

    @classmethod
    def train(cls, texts: Iterable[str], *, vocab_size: int, max_length: int,
              min_length: int = 1) -> TextTokenizer:
        """Learn a vocabulary of at most `vocab_size` word pieces from `texts`. The trainer
        numbers pieces in a different order from run to run (it counts in parallel), so they
        are numbered again in sorted order; ties between merges can still change a few
        pieces from run to run, which is why a training job keeps the tokenizer it made."""
        learner = _empty_tokenizer(models.WordPiece(unk_token=UNK))
        trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=[PAD, UNK],
                                            show_progress=False)
        learner.train_from_iterator(texts, trainer=trainer)
        pieces = sorted(set(learner.get_vocab()) - {PAD, UNK})
        vocab = {piece: number for number, piece in enumerate([PAD, UNK, *pieces])}
        tokenizer = _empty_tokenizer(models.WordPiece(vocab=vocab, unk_token=UNK))
        return cls(tokenizer, max_length=max_length, min_length=min_length)

    @classmethod
    def from_json(cls, body: str, *, max_length: int, min_length: int = 1) -> TextTokenizer:
        return cls(Tokenizer.from_str(body), max_length=max_length, min_length=min_length)

    def to_json(self) -> str:
        return str(self.tokenizer.to_str())

    @property
    def vocab_size(self) -> int:
        return int(self.tokenizer.get_vocab_size())

    def encode(self, texts: Sequence[str], *, length: int | None = None) -> torch.Tensor:
        """(N, L) int64 ids; L is `length`, else the longest text (>= min_length)."""
        encoded = [item.ids for item in self.tokenizer.encode_batch(list(texts))]
        width = length or max([self.min_length, *(len(ids) for ids in encoded)])
        out = torch.full((len(encoded), width), PAD_ID, dtype=torch.int64)
        for row, ids in enumerate(encoded):
            cut = ids[:width]
            out[row, :len(cut)] = torch.tensor(cut, dtype=torch.int64)
        return out
