"""Stored paths become relative to LOOKALIKE_HOME, so a home can be moved and served anywhere.

Until now a file under the home was recorded as the process saw it: absolute
(`/srv/lookalike/originals/ab/cd/….png`), or relative to the working directory of the
command that wrote it (`home/originals/ab/cd/….png`). Either breaks once the home moves
or the service starts from another directory. Every path the layout under the home puts
there is recognised by its tail, wherever the home was then, and cut down to that tail:

- image.stored_path                 originals/<2>/<2>/<sha256>.<ext>
- index_snapshot.path               indexes/space-<id>/<file>
- space.options weights_file, head.file, and job.result weights_file, head_file
                                    weights/<prefix>-<sha256>.pt (a fine-tuning job's)
- job.result curves                 jobs/<id>/curves.png

Anything else (a weight file given by hand, outside the home) keeps its absolute path.

The downgrade leaves the rows as they are: the earlier code opens a relative path against
its working directory, so it must then run from inside the home.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 08:40:00
"""

import re
from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ORIGINAL = re.compile(r"(?:^|/)(originals/[0-9a-f]{2}/[0-9a-f]{2}/[0-9a-f]{64}\.[A-Za-z0-9]+)$")
_SNAPSHOT = re.compile(r"(?:^|/)(indexes/space-[0-9]+/[^/]+)$")
_WEIGHTS = re.compile(r"(?:^|/)(weights/[^/]+-[0-9a-f]{64}\.pt)$")
_CURVES = re.compile(r"(?:^|/)(jobs/[0-9]+/curves\.png)$")

Rewrite = Callable[[str], str]


def _tail(pattern: re.Pattern[str]) -> Rewrite:
    """A rewrite keeping the part of a path the home's layout names; others unchanged."""
    def rewrite(path: str) -> str:
        found = pattern.search(path.replace("\\", "/"))
        return found.group(1) if found else path
    return rewrite


def _column(table: str, column: str, rewrite: Rewrite) -> None:
    """Rewrite a text column holding one path, row by row where it changes."""
    bind = op.get_bind()
    target = sa.table(table, sa.column("id", sa.BigInteger()), sa.column(column, sa.Text()))
    rows = bind.execute(sa.select(target.c.id, target.c[column])
                        .where(target.c[column].is_not(None))).all()
    for row_id, path in rows:
        if (new := rewrite(path)) != path:
            bind.execute(sa.update(target).where(target.c.id == row_id)
                         .values({column: new}))


def _json_type() -> sa.types.TypeEngine[Any]:
    return postgresql.JSONB() if op.get_bind().dialect.name == "postgresql" else sa.JSON()


def _document(table: str, column: str, rewrite: Callable[[dict[str, Any]], bool]) -> None:
    """Rewrite a JSON column's documents in place; `rewrite` says whether it changed one."""
    bind = op.get_bind()
    target = sa.table(table, sa.column("id", sa.BigInteger()), sa.column(column, _json_type()))
    rows = bind.execute(sa.select(target.c.id, target.c[column])
                        .where(target.c[column].is_not(None))).all()
    for row_id, document in rows:
        if isinstance(document, dict) and rewrite(document):
            bind.execute(sa.update(target).where(target.c.id == row_id)
                         .values({column: document}))


def _keys(document: dict[str, Any], keys: dict[str, Rewrite]) -> bool:
    """Rewrite the named string fields of one document; whether any changed."""
    changed = False
    for key, rewrite in keys.items():
        value = document.get(key)
        if isinstance(value, str) and (new := rewrite(value)) != value:
            document[key] = new
            changed = True
    return changed


def _space_options(options: dict[str, Any]) -> bool:
    weights = _tail(_WEIGHTS)
    head = options.get("head")
    changed = _keys(options, {"weights_file": weights})
    return _keys(head, {"file": weights}) or changed if isinstance(head, dict) else changed


def _job_result(result: dict[str, Any]) -> bool:
    weights = _tail(_WEIGHTS)
    return _keys(result, {"weights_file": weights, "head_file": weights,
                          "curves": _tail(_CURVES)})


def upgrade() -> None:
    """Record every stored path under the home relative to the home."""
    _column("image", "stored_path", _tail(_ORIGINAL))
    _column("index_snapshot", "path", _tail(_SNAPSHOT))
    _document("space", "options", _space_options)
    _document("job", "result", _job_result)


def downgrade() -> None:
    """Nothing to undo in the schema; the paths stay relative to the home (see above)."""
