"""Job leases (which process runs a job's batches, when it last said so, until when), and
when each space was filled (from then on, ingest keeps it whole).

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
    """Add the lease columns to job (every existing job starts without a lease, so the next
    server to start may take over those left unfinished) and space.filled_at, set for the
    default space and every space a reindex job has filled."""
    with op.batch_alter_table("job") as batch:
        batch.add_column(sa.Column("lease_owner", sa.String(length=255), nullable=True))
        batch.add_column(sa.Column("lease_heartbeat_at", sa.DateTime(timezone=True),
                                   nullable=True))
        batch.add_column(sa.Column("lease_expires_at", sa.DateTime(timezone=True),
                                   nullable=True))
    with op.batch_alter_table("space") as batch:
        batch.add_column(sa.Column("filled_at", sa.DateTime(timezone=True), nullable=True))
    _mark_filled_spaces()


def _mark_filled_spaces() -> None:
    """filled_at = now for the default space and the spaces of succeeded reindex jobs."""
    job = sa.table("job", sa.column("kind", sa.String()), sa.column("state", sa.String()),
                   sa.column("params", sa.JSON()))
    space = sa.table("space", sa.column("name", sa.String()), sa.column("is_default", sa.Boolean()),
                     sa.column("filled_at", sa.DateTime(timezone=True)))
    connection = op.get_bind()
    succeeded = sa.select(job.c.params).where(job.c.kind == "reindex",
                                              job.c.state == "succeeded")
    names = sorted({params["space"] for params in connection.scalars(succeeded)})
    filled = sa.or_(space.c.is_default, space.c.name.in_(names))
    connection.execute(sa.update(space).where(filled).values(filled_at=sa.func.now()))


def downgrade() -> None:
    """Drop space.filled_at and the lease columns: the jobs stay, and any process may resume
    them again."""
    with op.batch_alter_table("space") as batch:
        batch.drop_column("filled_at")
    with op.batch_alter_table("job") as batch:
        for name in reversed(LEASE_COLUMNS):
            batch.drop_column(name)
