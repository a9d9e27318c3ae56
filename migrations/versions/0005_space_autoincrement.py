"""Space ids are never given out twice: the space table gets AUTOINCREMENT on SQLite.

Without it SQLite hands the highest id again once that row is deleted, so a new space could
take a deleted one's id, and with it the index folder and snapshots named by that id.
PostgreSQL sequences never reuse a value: there the revision changes nothing.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 06:10:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _recreate_space(*, autoincrement: bool) -> None:
    """Copy the space table into a new one with or without AUTOINCREMENT (SQLite cannot add
    it in place); rows, ids, keys and indexes are kept. A no-op on other databases."""
    if op.get_bind().dialect.name != "sqlite":
        return
    with op.batch_alter_table("space", recreate="always",
                              table_kwargs={"sqlite_autoincrement": autoincrement}):
        pass


def upgrade() -> None:
    """Give the space table AUTOINCREMENT on SQLite: ids only grow from now on."""
    _recreate_space(autoincrement=True)


def downgrade() -> None:
    """Take AUTOINCREMENT away again: SQLite may reuse the highest deleted id once more."""
    _recreate_space(autoincrement=False)
