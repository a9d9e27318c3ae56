"""Initial catalog: image, space, region, embedding, index_change, job, index_snapshot.

Revision ID: 0001
Revises:
Create Date: 2026-11-25 15:16:38
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON_DOC = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
NOW = sa.text("CURRENT_TIMESTAMP")


def _id() -> sa.Column:
    return sa.Column("id", BIG_ID, autoincrement=True, nullable=False)


def _created_at() -> sa.Column:
    return sa.Column("created_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False)


def _space_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["space_id"], ["space.id"], name=op.f(f"fk_{table}_space_id_space"), ondelete="CASCADE"
    )


def upgrade() -> None:
    """Create every catalog table with its keys, checks and indexes."""
    op.create_table(
        "image",
        _id(),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("source_uri", sa.Text(), nullable=False),
        sa.Column("stored_path", sa.Text(), nullable=True),
        sa.Column("width", sa.Integer(), nullable=True),
        sa.Column("height", sa.Integer(), nullable=True),
        sa.Column("format", sa.String(length=16), nullable=True),
        sa.Column("byte_size", sa.BigInteger(), nullable=True),
        sa.Column("status", sa.String(length=16), server_default="pending", nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("collection", sa.String(length=200), nullable=True),
        sa.Column("label", sa.String(length=200), nullable=True),
        sa.Column("meta", JSON_DOC, nullable=False),
        sa.Column("video_id", sa.String(length=200), nullable=True),
        sa.Column("video_ts", sa.Float(), nullable=True),
        _created_at(),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        sa.CheckConstraint(
            "status IN ('pending', 'embedded', 'failed', 'deleted')", name=op.f("ck_image_status")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_image")),
        sa.UniqueConstraint("sha256", name=op.f("uq_image_sha256")),
    )
    op.create_index(op.f("ix_image_collection"), "image", ["collection"])
    op.create_index(op.f("ix_image_label"), "image", ["label"])
    op.create_index(op.f("ix_image_video_id"), "image", ["video_id"])

    op.create_table(
        "job",
        _id(),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("params", JSON_DOC, nullable=False),
        sa.Column("state", sa.String(length=16), server_default="queued", nullable=False),
        sa.Column("progress_done", sa.Integer(), server_default="0", nullable=False),
        sa.Column("progress_total", sa.Integer(), server_default="0", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("result", JSON_DOC, nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        _created_at(),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')",
            name=op.f("ck_job_state"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job")),
    )
    op.create_index(op.f("ix_job_kind"), "job", ["kind"])
    op.create_index(op.f("ix_job_state"), "job", ["state"])

    op.create_table(
        "space",
        _id(),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("backbone", sa.String(length=100), nullable=False),
        sa.Column("weights_sha256", sa.String(length=64), nullable=True),
        sa.Column("layer", sa.String(length=100), nullable=False),
        sa.Column("pooling", sa.String(length=32), nullable=False),
        sa.Column("whitening", sa.String(length=100), nullable=True),
        sa.Column("dim", sa.Integer(), nullable=False),
        sa.Column("options", JSON_DOC, nullable=False),
        sa.Column("is_default", sa.Boolean(), server_default=sa.false(), nullable=False),
        _created_at(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_space")),
        sa.UniqueConstraint("name", name=op.f("uq_space_name")),
    )
    # At most one default space: the unique key covers only the rows where is_default is true.
    op.create_index(
        "uq_space_one_default",
        "space",
        ["is_default"],
        unique=True,
        postgresql_where=sa.text("is_default"),
        sqlite_where=sa.text("is_default"),
    )

    op.create_table(
        "index_change",
        _id(),
        sa.Column("space_id", sa.BigInteger(), nullable=False),
        sa.Column("image_id", sa.BigInteger(), nullable=False),
        sa.Column("op", sa.String(length=8), nullable=False),
        _created_at(),
        sa.CheckConstraint("op IN ('add', 'remove')", name=op.f("ck_index_change_op")),
        _space_fk("index_change"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_index_change")),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_index_change_space_id_id", "index_change", ["space_id", "id"])

    op.create_table(
        "index_snapshot",
        _id(),
        sa.Column("space_id", sa.BigInteger(), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("factory", sa.String(length=200), nullable=False),
        sa.Column("vector_count", sa.BigInteger(), nullable=False),
        sa.Column("watermark", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        _created_at(),
        _space_fk("index_snapshot"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_index_snapshot")),
    )
    op.create_index("ix_index_snapshot_space_id_id", "index_snapshot", ["space_id", "id"])

    op.create_table(
        "region",
        _id(),
        sa.Column("image_id", sa.BigInteger(), nullable=False),
        sa.Column("x", sa.Float(), nullable=False),
        sa.Column("y", sa.Float(), nullable=False),
        sa.Column("w", sa.Float(), nullable=False),
        sa.Column("h", sa.Float(), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=True),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("source", sa.String(length=100), nullable=False),
        _created_at(),
        sa.ForeignKeyConstraint(
            ["image_id"], ["image.id"], name=op.f("fk_region_image_id_image"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_region")),
    )
    op.create_index(op.f("ix_region_image_id"), "region", ["image_id"])

    op.create_table(
        "embedding",
        _id(),
        sa.Column("space_id", sa.BigInteger(), nullable=False),
        sa.Column("image_id", sa.BigInteger(), nullable=False),
        sa.Column("region_id", sa.BigInteger(), nullable=True),
        sa.Column("vector", sa.LargeBinary(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        _created_at(),
        sa.ForeignKeyConstraint(
            ["image_id"], ["image.id"], name=op.f("fk_embedding_image_id_image"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["region_id"],
            ["region.id"],
            name=op.f("fk_embedding_region_id_region"),
            ondelete="CASCADE",
        ),
        _space_fk("embedding"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_embedding")),
        sa.UniqueConstraint(
            "space_id",
            "image_id",
            "region_id",
            name=op.f("uq_embedding_space_id_image_id_region_id"),
        ),
    )
    op.create_index(op.f("ix_embedding_image_id"), "embedding", ["image_id"])
    op.create_index(op.f("ix_embedding_region_id"), "embedding", ["region_id"])
    # NULLs are distinct in a unique key, so whole-image embeddings need their own partial one.
    op.create_index(
        "uq_embedding_whole_image",
        "embedding",
        ["space_id", "image_id"],
        unique=True,
        postgresql_where=sa.text("region_id IS NULL"),
        sqlite_where=sa.text("region_id IS NULL"),
    )


def downgrade() -> None:
    """Drop every catalog table, children before parents (their indexes go with them)."""
    for table in ("embedding", "region", "index_snapshot", "index_change", "space", "job", "image"):
        op.drop_table(table)
