"""The change log names the region an entry is about: a region space's vectors are keyed by
region id (one per box), so its replicas add and remove regions, not images.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 15:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """A nullable region id (no foreign key: the log outlives the rows it mentions)."""
    with op.batch_alter_table("index_change") as batch:
        batch.add_column(sa.Column("region_id", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("index_change") as batch:
        batch.drop_column("region_id")
