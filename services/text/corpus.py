"""The texts a text-CNN job learns from, split once and kept in the job's folder so that
epochs run after a restart see the same texts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from lookalike.retrieval.text.corpus import LabelledTexts, from_pairs, read_corpus, stratified_split
from lookalike.services.catalog import images as image_queries
from lookalike.services.errors import InvalidRequest
from lookalike.services.runtime import Runtime
from lookalike.services.storage.files import write_atomic
from lookalike.services.text.request import TextTrainRequest


def _catalog_texts(runtime: Runtime, collection: str | None) -> LabelledTexts:
    """Captions (title and caption) of labelled catalog images, labelled by image label."""
    with runtime.read_session() as session:
        rows = image_queries.captioned_images(session=session, collection=collection,
                                              labelled=True)
    where = f" in collection '{collection}'" if collection else ""
    pairs = [(text, label) for _, text, label in rows if label is not None]
    if len({label for _, label in pairs}) < 2:
        raise InvalidRequest(f"training on the catalog needs captioned, labelled images of at "
                             f"least 2 labels{where}; found {len(pairs)} captioned images")
    return from_pairs(pairs)


def load_texts(runtime: Runtime, request: TextTrainRequest) -> LabelledTexts:
    """All the labelled texts of the request, cut to a stratified `limit`."""
    data = (_catalog_texts(runtime, request.collection) if request.from_catalog
            else read_corpus(Path(request.source or "")))
    if request.limit is not None and request.limit < len(data.texts):
        kept, _ = stratified_split(data.labels, test_fraction=1 - request.limit / len(data.texts),
                                   seed=request.seed)
        data = data.subset(kept)
    return data


def split_texts(runtime: Runtime, request: TextTrainRequest,
                workdir: Path) -> tuple[LabelledTexts, LabelledTexts]:
    """(train, held-out) texts: a stratified split with the request's seed, drawn once and
    kept in workdir/split.json."""
    path = workdir / "split.json"
    if path.is_file():
        saved = json.loads(path.read_text(encoding="utf-8"))
        return tuple(LabelledTexts(side["texts"], np.asarray(side["labels"], dtype=np.int64),
                                   saved["classes"]) for side in (saved["train"], saved["val"]))  # type: ignore[return-value]
    data = load_texts(runtime, request)
    try:
        train, val = stratified_split(data.labels, test_fraction=request.val_fraction,
                                      seed=request.seed)
    except ValueError as exc:
        raise InvalidRequest(f"cannot split {len(data.texts)} texts of {len(data.classes)} "
                             f"classes for validation: {exc}") from exc
    sides = data.subset(train), data.subset(val)
    body = json.dumps({"classes": data.classes, **{
        name: {"texts": side.texts, "labels": side.labels.tolist()}
        for name, side in zip(("train", "val"), sides, strict=True)}})
    workdir.mkdir(parents=True, exist_ok=True)
    write_atomic(path, body.encode())
    return sides
