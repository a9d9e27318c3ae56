"""The video classifiers' JSON document (weights/video-classifiers.json): each trained
classifier by name (its content-addressed file, sha256, classes, figures) and the default
one that ingest applies. Kept apart from the models (no torch), so backup and storage
verify can name these files cheaply."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lookalike.services.config import Settings
from lookalike.services.storage.files import write_atomic

REGISTRY = "video-classifiers.json"


def registry(settings: Settings) -> dict[str, Any]:
    """The classifiers' document: {"default": name | None, "classifiers": {name: entry}}."""
    path = settings.layout.weights / REGISTRY
    if not path.is_file():
        return {"default": None, "classifiers": {}}
    document: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return document


def register(settings: Settings, name: str, entry: dict[str, Any], *,
             make_default: bool) -> None:
    """Record classifier `name` (replacing an older one of that name), default if asked."""
    document = registry(settings)
    document["classifiers"][name] = entry
    if make_default:
        document["default"] = name
    data = json.dumps(document, indent=2, sort_keys=True).encode()
    write_atomic(settings.layout.weights / REGISTRY, data)


def default_entry(settings: Settings) -> tuple[str, dict[str, Any]] | None:
    """The default classifier's name and entry, or None when none was trained."""
    document = registry(settings)
    name = document.get("default")
    return (name, document["classifiers"][name]) if name else None


def classifier_files(settings: Settings) -> list[tuple[Path, str]]:
    """(path, recorded sha256) of every classifier's file, for backup and storage verify."""
    return [(settings.layout.resolve(entry["path"]), entry["sha256"])
            for entry in registry(settings)["classifiers"].values()]


def named_files(settings: Settings) -> set[Path]:
    """The document and the files it names (resolved): not orphans under weights/."""
    document = (settings.layout.weights / REGISTRY).resolve()
    return {document, *(path.resolve() for path, _ in classifier_files(settings))}
