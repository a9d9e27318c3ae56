"""Videos: a `video` table (one row per clip, unique by sha256) and, on image rows, the clip a
frame comes from (`video_id`, a foreign key) and its time in seconds (`t`).

They replace the placeholder columns of 0001 (`video_id` as free text, `video_ts`), which no
code ever wrote: their values are not carried over. Adding a foreign key copies the image
table on SQLite (batch "recreate"), which drops the full-text triggers of 0007 with the old
table: they are created again after each copy, in upgrade and in downgrade.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 12:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

# The SQLite FTS5 triggers of 0007, word for word (a copied table loses its triggers).
SQLITE_TRIGGERS = {
    "image_fts_insert": "AFTER INSERT ON image BEGIN "
                        "INSERT INTO image_fts(rowid, title, caption) "
                        "VALUES (new.id, coalesce(new.title, ''), coalesce(new.caption, '')); END",
    "image_fts_update": "AFTER UPDATE OF title, caption ON image BEGIN "
                        "DELETE FROM image_fts WHERE rowid = old.id; "
                        "INSERT INTO image_fts(rowid, title, caption) "
                        "VALUES (new.id, coalesce(new.title, ''), coalesce(new.caption, '')); END",
    "image_fts_delete": "AFTER DELETE ON image BEGIN "
                        "DELETE FROM image_fts WHERE rowid = old.id; END",
}


def _recreate_sqlite_triggers() -> None:
    """After a batch copy of `image` on SQLite: the full-text triggers again (idempotent)."""
    if op.get_bind().dialect.name != "sqlite":
        return
    for name, body in SQLITE_TRIGGERS.items():
        op.execute(f"DROP TRIGGER IF EXISTS {name}")
        op.execute(f"CREATE TRIGGER {name} {body}")


def _create_video_table() -> None:
    op.create_table(
        "video",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("source_uri", sa.Text(), nullable=False),
        sa.Column("stored_path", sa.Text(), nullable=True),
        sa.Column("byte_size", sa.BigInteger(), nullable=False),
        sa.Column("container", sa.String(length=16), nullable=False),
        sa.Column("codec", sa.String(length=32), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("fps", sa.Float(), nullable=False),
        sa.Column("duration", sa.Float(), nullable=False),
        sa.Column("collection", sa.String(length=200), nullable=True),
        sa.Column("label", sa.String(length=200), nullable=True),
        sa.Column("label_score", sa.Float(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True),
                  server_default=sa.text("CURRENT_TIMESTAMP"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_video")),
        sa.UniqueConstraint("sha256", name=op.f("uq_video_sha256")),
    )
    op.create_index(op.f("ix_video_collection"), "video", ["collection"])
    op.create_index(op.f("ix_video_label"), "video", ["label"])


def upgrade() -> None:
    """Create `video`; swap image's placeholder video columns for `video_id` (FK) and `t`."""
    _create_video_table()
    with op.batch_alter_table("image") as batch:
        batch.drop_index("ix_image_video_id")
        batch.drop_column("video_id")
        batch.drop_column("video_ts")
    with op.batch_alter_table("image") as batch:
        batch.add_column(sa.Column("video_id", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("t", sa.Float(), nullable=True))
        batch.create_foreign_key(op.f("fk_image_video_id_video"), "video", ["video_id"], ["id"])
        batch.create_index(op.f("ix_image_video_id"), ["video_id"], unique=False)
    _recreate_sqlite_triggers()


def downgrade() -> None:
    """Back to 0001's placeholders, keeping each frame's clip id (as text) and time."""
    with op.batch_alter_table("image") as batch:
        batch.drop_index("ix_image_video_id")
        batch.drop_constraint("fk_image_video_id_video", type_="foreignkey")
        batch.alter_column("video_id", new_column_name="video_ref")
        batch.alter_column("t", new_column_name="video_ts")
    with op.batch_alter_table("image") as batch:
        batch.add_column(sa.Column("video_id", sa.String(length=200), nullable=True))
    op.execute("UPDATE image SET video_id = CAST(video_ref AS VARCHAR(200)) "
               "WHERE video_ref IS NOT NULL")
    with op.batch_alter_table("image") as batch:
        batch.drop_column("video_ref")
        batch.create_index("ix_image_video_id", ["video_id"], unique=False)
    _recreate_sqlite_triggers()
    op.drop_index(op.f("ix_video_label"), table_name="video")
    op.drop_index(op.f("ix_video_collection"), table_name="video")
    op.drop_table("video")
