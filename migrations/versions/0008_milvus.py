"""The vector_follower table: how far each space's Milvus collection has applied the change
log, so a follower that crashes replays from there.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 08:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create vector_follower: one row per space that a Milvus collection follows."""
    op.create_table(
        "vector_follower",
        sa.Column("space_id", sa.BigInteger(), nullable=False),
        sa.Column("watermark", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True),
                  server_default=sa.text("CURRENT_TIMESTAMP"), nullable=False),
        sa.ForeignKeyConstraint(["space_id"], ["space.id"],
                                name=op.f("fk_vector_follower_space_id_space"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("space_id", name=op.f("pk_vector_follower")),
    )


def downgrade() -> None:
    """Drop vector_follower: a follower started after an upgrade replays from sequence 0."""
    op.drop_table("vector_follower")
