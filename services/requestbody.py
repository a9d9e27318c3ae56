"""The base of every request a person sends as JSON (search bodies, job requests): a field it
does not know and a value of the wrong JSON type are refused with a 422 that names them,
never guessed at (lax validation read {"image_id": true} as image 1, "yes" as true, and
dropped a misspelt filter such as "colection", so the job ran on the whole catalog)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator

from lookalike.services.catalog.storable import REFUSAL, holds_unstorable


class RequestBody(BaseModel):
    """Unknown fields forbidden; strict types (JSON numbers for numbers, true/false for
    booleans; an integer is still a valid float); no text the catalog cannot store (a NUL, an
    unpaired surrogate: services/catalog/storable.py)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    @field_validator("*", mode="after")
    @classmethod
    def _storable_text(cls, value: Any) -> Any:
        if holds_unstorable(value):
            raise ValueError(REFUSAL)
        return value
