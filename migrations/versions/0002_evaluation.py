"""Evaluation: each benchmark result of a space (mAP and its other figures).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 17:54:41
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON_DOC = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    """Create the evaluation table; a space's rows go with it (ON DELETE CASCADE)."""
    op.create_table(
        "evaluation",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("space_id", sa.BigInteger(), nullable=False),
        sa.Column("benchmark", sa.String(length=100), nullable=False),
        sa.Column("map", sa.Float(), nullable=False),
        sa.Column("figures", JSON_DOC, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True),
                  server_default=sa.text("CURRENT_TIMESTAMP"), nullable=False),
        sa.ForeignKeyConstraint(["space_id"], ["space.id"],
                                name=op.f("fk_evaluation_space_id_space"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_evaluation")),
    )
    op.create_index("ix_evaluation_space_id_id", "evaluation", ["space_id", "id"])


def downgrade() -> None:
    """Drop the evaluation table (its index goes with it)."""
    op.drop_table("evaluation")
