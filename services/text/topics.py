"""Topics for words: the default text model classifies any text (with a confidence flag),
gives an image's caption its topic at ingest and when it is edited."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from sqlalchemy.orm import Session

from lookalike.services.catalog import images as image_queries
from lookalike.services.catalog import textmodels
from lookalike.services.catalog.models import Image, TextModel
from lookalike.services.errors import InvalidRequest, TextTooLong
from lookalike.services.runtime import Runtime

log = logging.getLogger(__name__)

MAX_TEXTS = 100


def check_text(text: str, *, max_bytes: int) -> str:
    """The text stripped; InvalidRequest when empty, TextTooLong when over `max_bytes`."""
    size = len(text.encode("utf-8", errors="surrogatepass"))
    if size > max_bytes:
        raise TextTooLong(f"text is {size} bytes; at most {max_bytes} "
                          "(LOOKALIKE_MAX_TEXT_BYTES)")
    if not text.strip():
        raise InvalidRequest("text is empty; give some words to classify")
    return text.strip()


def _answer(runtime: Runtime, model: TextModel, texts: Sequence[str]) -> list[dict[str, Any]]:
    threshold = runtime.settings.text_min_confidence
    predictions = runtime.text_classifier(model).predict(list(texts))
    return [{"topic": p.topic, "score": round(p.score, 4),
             "confident": p.score >= threshold,
             "note": None if p.score >= threshold else
             f"low confidence: the best topic has probability {p.score:.2f} < {threshold}",
             "scores": {name: round(value, 4) for name, value in p.scores.items()}}
            for p in predictions]


def classify_texts(runtime: Runtime, texts: Sequence[str], *,
                   model_name: str | None = None) -> dict[str, Any]:
    """Each text's most probable topic, its probability, every topic's, and whether the
    answer is confident (probability >= LOOKALIKE_TEXT_MIN_CONFIDENCE)."""
    if not texts or len(texts) > MAX_TEXTS:
        raise InvalidRequest(f"give between 1 and {MAX_TEXTS} texts; got {len(texts)}")
    cleaned = [check_text(text, max_bytes=runtime.settings.max_text_bytes) for text in texts]
    with runtime.read_session() as session:
        model = textmodels.find_text_model(session=session, name=model_name)
        session.expunge(model)
    return {"model": model.name, "classes": model.classes,
            "min_confidence": runtime.settings.text_min_confidence,
            "results": _answer(runtime, model, cleaned)}


def _words(image: Image) -> str:
    return " ".join(part for part in (image.title, image.caption) if part)


def give_topics(runtime: Runtime, session: Session, image_ids: Sequence[int], *,
                model: TextModel | None = None) -> int:
    """Set the topic of these images' words with `model`, else the default text model (the
    caller commits); nothing when there is none. Returns how many got one."""
    model = model or textmodels.default_text_model(session=session)
    if model is None or not image_ids:
        return 0
    rows = [row for row in image_queries.images_by_ids(session=session, ids=image_ids).values()
            if _words(row)]
    if not rows:
        return 0
    predictions = runtime.text_classifier(model).predict([_words(row) for row in rows])
    image_queries.set_topics(session=session, topics={
        row.id: (p.topic, round(p.score, 4)) for row, p in zip(rows, predictions, strict=True)})
    return len(rows)


def edit_words(runtime: Runtime, image_id: int, values: dict[str, str | None]) -> Image:
    """Set an image's title and/or caption, and its topic from the default text model."""
    with runtime.session() as session:
        image = image_queries.set_words(session=session, image_id=image_id, values=values)
        give_topics(runtime, session, [image_id])
        session.commit()
        session.refresh(image)
        session.expunge(image)
    return image
