"""The base of every request a person sends as JSON (search bodies, job requests): a field it
does not know and a value of the wrong JSON type are refused with a 422 that names them,
never guessed at (lax validation read {"image_id": true} as image 1, "yes" as true, and
dropped a misspelt filter such as "colection", so the job ran on the whole catalog)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator

from lookalike.services.catalog.nul import holds_nul


class RequestBody(BaseModel):
    """Unknown fields forbidden; strict types (JSON numbers for numbers, true/false for
    booleans; an integer is still a valid float); no text with a NUL character, which the
    catalog cannot store (services/catalog/nul.py)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        if holds_nul(value):
            raise ValueError("holds a NUL (0x00) character, which the catalog cannot store; "
                             "remove it")
        return value
