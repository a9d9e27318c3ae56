"""Regions as detectors and people give them: box corners x0, y0, x1, y1 in the original
image's pixels (instead of x, y, w, h), the detector's name (or 'user') instead of `source`,
a check that every box has positive width and height, and an index on the detector.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 12:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CORNERS = ("x0", "y0", "x1", "y1")
SIZES = ("x", "y", "w", "h")
BOX_CHECK = "x0 >= 0 AND y0 >= 0 AND x1 > x0 AND y1 > y0"


def upgrade() -> None:
    """Add the corners, fill them from x, y, w, h, then drop those and rename source."""
    with op.batch_alter_table("region") as batch:
        for name in CORNERS:
            batch.add_column(sa.Column(name, sa.Float(), nullable=True))
    region = sa.table("region", *(sa.column(name, sa.Float()) for name in CORNERS + SIZES))
    op.get_bind().execute(sa.update(region).values(
        x0=region.c.x, y0=region.c.y, x1=region.c.x + region.c.w, y1=region.c.y + region.c.h))
    with op.batch_alter_table("region") as batch:
        for name in CORNERS:
            batch.alter_column(name, existing_type=sa.Float(), nullable=False)
        for name in SIZES:
            batch.drop_column(name)
        batch.alter_column("source", new_column_name="detector",
                           existing_type=sa.String(length=100), existing_nullable=False)
        batch.create_check_constraint(op.f("ck_region_box"), BOX_CHECK)
    op.create_index(op.f("ix_region_detector"), "region", ["detector"])


def downgrade() -> None:
    """Back to x, y, w, h and `source`: the same boxes, as corner and size."""
    op.drop_index(op.f("ix_region_detector"), table_name="region")
    with op.batch_alter_table("region") as batch:
        batch.drop_constraint(op.f("ck_region_box"), type_="check")
        batch.alter_column("detector", new_column_name="source",
                           existing_type=sa.String(length=100), existing_nullable=False)
        for name in SIZES:
            batch.add_column(sa.Column(name, sa.Float(), nullable=True))
    region = sa.table("region", *(sa.column(name, sa.Float()) for name in CORNERS + SIZES))
    op.get_bind().execute(sa.update(region).values(
        x=region.c.x0, y=region.c.y0, w=region.c.x1 - region.c.x0, h=region.c.y1 - region.c.y0))
    with op.batch_alter_table("region") as batch:
        for name in SIZES:
            batch.alter_column(name, existing_type=sa.Float(), nullable=False)
        for name in CORNERS:
            batch.drop_column(name)
