"""Text model rows: the trained topic classifiers and which one is the default."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from lookalike.services.catalog.models import TextModel
from lookalike.services.errors import InvalidRequest, TextModelNotFound


def add_text_model(*, session: Session, name: str, sha256: str, path: str,
                   classes: list[str], figures: dict[str, Any], make_default: bool,
                   trained_by_job: int | None = None) -> TextModel:
    """Record a trained text model; `make_default` makes it the one ingest applies."""
    if get_text_model(session=session, name=name) is not None:
        raise InvalidRequest(f"text model '{name}' already exists; pick another name")
    if make_default:
        session.execute(update(TextModel).values(is_default=False))
        session.flush()
    model = TextModel(name=name, sha256=sha256, path=path, classes=classes, figures=figures,
                      is_default=make_default, trained_by_job=trained_by_job)
    session.add(model)
    session.flush()
    return model


def get_text_model(*, session: Session, name: str) -> TextModel | None:
    return session.scalar(select(TextModel).where(TextModel.name == name))


def default_text_model(*, session: Session) -> TextModel | None:
    """The text model that gives captions their topic, or None when there is none."""
    return session.scalar(select(TextModel).where(TextModel.is_default.is_(True)))


def find_text_model(*, session: Session, name: str | None) -> TextModel:
    """The named text model, or the default when `name` is None; TextModelNotFound else."""
    model = (default_text_model(session=session) if name is None
             else get_text_model(session=session, name=name))
    if model is None:
        what = f"no text model '{name}'" if name else "no default text model"
        raise TextModelNotFound(f"{what}; train one with `lookalike text train NAME --from "
                                "DIR` or POST /v1/jobs {\"kind\": \"text-train\"}")
    return model


def list_text_models(*, session: Session) -> list[TextModel]:
    return list(session.scalars(select(TextModel).order_by(TextModel.id)))
