"""What a search may be restricted to: topic, collection, label, the words of its
captions and the label of the video a frame comes from; the ids that pass (handed to the
index search), and facet counts of topics and labels over the candidates."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import ColumnElement, Select, func, select
from sqlalchemy.orm import Session

from lookalike.services.catalog import textmodels
from lookalike.services.catalog.fulltext import query_words, words_condition
from lookalike.services.catalog.models import Image, Region, Video
from lookalike.services.errors import InvalidRequest

FACET_LIMIT = 50


@dataclass(frozen=True)
class Filters:
    """Equalities on image columns and a keyword query; None: not restricted."""

    topic: str | None = None
    collection: str | None = None
    label: str | None = None
    text: str | None = None
    video_label: str | None = None

    def columns(self) -> dict[str, str]:
        given = {"topic": self.topic, "collection": self.collection, "label": self.label}
        return {name: value for name, value in given.items() if value is not None}

    @property
    def restricts(self) -> bool:
        return bool(self.columns()) or self.text is not None or self.video_label is not None


def known_topics(session: Session) -> set[str]:
    """Topics a filter may name: the default text model's classes and those in the catalog."""
    found = set(session.scalars(select(Image.topic).where(Image.topic.is_not(None))
                                .distinct()))
    model = textmodels.default_text_model(session=session)
    return found | set(model.classes if model else [])


def check_filters(session: Session, filters: Filters) -> None:
    """InvalidRequest for an unknown topic or video label, or a text query without words."""
    if filters.text is not None:
        query_words(filters.text)
    if filters.topic is not None:
        topics = known_topics(session)
        if filters.topic not in topics:
            shown = ", ".join(sorted(topics)) or "none yet (no text model has run)"
            raise InvalidRequest(f"unknown topic '{filters.topic}'; known topics: {shown}")
    if filters.video_label is not None:
        labels = {label for label in session.scalars(select(Video.label).distinct()) if label}
        if filters.video_label not in labels:
            shown = ", ".join(sorted(labels)) or "none yet (no video has a label)"
            raise InvalidRequest(f"unknown video label '{filters.video_label}'; video labels "
                                 f"in the catalog: {shown}")


def _conditions(session: Session, filters: Filters, *, skip: str | None = None
                ) -> list[ColumnElement[bool]]:
    dialect = session.get_bind().dialect.name
    conditions: list[Any] = [Image.status == "embedded"]
    conditions += [getattr(Image, name) == value for name, value in filters.columns().items()
                   if name != skip]
    if filters.text is not None:
        conditions.append(words_condition(dialect, query_words(filters.text)))
    if filters.video_label is not None:
        conditions.append(Image.video_id.in_(select(Video.id)
                                             .where(Video.label == filters.video_label)))
    return conditions


def allowed_ids(session: Session, filters: Filters) -> np.ndarray:
    """The int64 ids of live images that pass every filter, ascending."""
    query: Select[Any] = select(Image.id).where(*_conditions(session, filters)).order_by(Image.id)
    return np.fromiter(session.scalars(query), dtype=np.int64)


def facet_counts(session: Session, filters: Filters) -> dict[str, list[dict[str, Any]]]:
    """Counts of topics and labels over the candidates, most frequent first. Each facet
    leaves its own filter out, so the chips show what choosing another value would give."""
    out = {}
    for facet, column in (("topics", Image.topic), ("labels", Image.label)):
        skip = "topic" if facet == "topics" else "label"
        query = (select(column, func.count()).where(*_conditions(session, filters, skip=skip))
                 .where(column.is_not(None)).group_by(column)
                 .order_by(func.count().desc(), column).limit(FACET_LIMIT))
        out[facet] = [{"value": value, "count": int(count)}
                      for value, count in session.execute(query)]
    return out


def allowed_region_ids(session: Session, filters: Filters) -> np.ndarray:
    """The int64 ids of the regions whose live image passes every filter, ascending (what
    a region search is restricted to)."""
    query: Select[Any] = (select(Region.id).join(Image, Image.id == Region.image_id)
                          .where(*_conditions(session, filters)).order_by(Region.id))
    return np.fromiter(session.scalars(query), dtype=np.int64)
