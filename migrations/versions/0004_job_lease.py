"""Job leases: which process runs a job's batches, when it last said so, and until when.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 06:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LEASE_COLUMNS = ("lease_owner", "lease_heartbeat_at", "lease_expires_at")


def upgrade() -> None:
    """Add the lease columns to job; every existing job starts without a lease, so the next
    server to start may take over those left unfinished."""
    with op.batch_alter_table("job") as batch:
        batch.add_column(sa.Column("lease_owner", sa.String(length=255), nullable=True))
        batch.add_column(sa.Column("lease_heartbeat_at", sa.DateTime(timezone=True),
                                   nullable=True))
        batch.add_column(sa.Column("lease_expires_at", sa.DateTime(timezone=True),
                                   nullable=True))


def downgrade() -> None:
    """Drop the lease columns: the jobs stay, and any process may resume them again."""
    with op.batch_alter_table("job") as batch:
        for name in reversed(LEASE_COLUMNS):
            batch.drop_column(name)
