"""Words beside the pixels: an image's title, caption and topic, full-text searchable, and the
trained text models that give captions their topic.

Full text is the database's own engine, kept in step by the database itself:
PostgreSQL: a generated `caption_tsv` tsvector column (English configuration) with a GIN index.
SQLite: an FTS5 table `image_fts` (porter stemmer) whose rowid is the image id, filled by
triggers on insert, update of title/caption, and delete of image rows.
A later revision that copies the image table on SQLite (batch "recreate") drops those
triggers with the old table and must create them again (`_create_sqlite_triggers`).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 08:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON_DOC = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

TSVECTOR = ("to_tsvector('english'::regconfig, "
            "coalesce(title, '') || ' ' || coalesce(caption, ''))")
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


def _create_sqlite_triggers() -> None:
    for name, body in SQLITE_TRIGGERS.items():
        op.execute(f"CREATE TRIGGER {name} {body}")


def _add_full_text() -> None:
    """The dialect's full-text structure over title and caption, filled from existing rows."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"ALTER TABLE image ADD COLUMN caption_tsv tsvector "
                   f"GENERATED ALWAYS AS ({TSVECTOR}) STORED")
        op.execute("CREATE INDEX ix_image_caption_tsv ON image USING gin (caption_tsv)")
        return
    op.execute("CREATE VIRTUAL TABLE image_fts USING fts5(title, caption, "
               "tokenize='porter unicode61')")
    op.execute("INSERT INTO image_fts(rowid, title, caption) "
               "SELECT id, coalesce(title, ''), coalesce(caption, '') FROM image")
    _create_sqlite_triggers()


def _drop_full_text() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX ix_image_caption_tsv")
        op.execute("ALTER TABLE image DROP COLUMN caption_tsv")
        return
    for name in SQLITE_TRIGGERS:
        op.execute(f"DROP TRIGGER {name}")
    op.execute("DROP TABLE image_fts")


def upgrade() -> None:
    """Title, caption, topic and topic score on images; full text; the text_model table."""
    with op.batch_alter_table("image") as batch:
        batch.add_column(sa.Column("title", sa.String(length=300), nullable=True))
        batch.add_column(sa.Column("caption", sa.Text(), nullable=True))
        batch.add_column(sa.Column("topic", sa.String(length=100), nullable=True))
        batch.add_column(sa.Column("topic_score", sa.Float(), nullable=True))
        batch.create_index("ix_image_topic", ["topic"], unique=False)
    _add_full_text()
    op.create_table(
        "text_model",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("classes", JSON_DOC, nullable=False),
        sa.Column("figures", JSON_DOC, nullable=False),
        sa.Column("is_default", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("trained_by_job", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True),
                  server_default=sa.text("CURRENT_TIMESTAMP"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_text_model")),
        sa.UniqueConstraint("name", name=op.f("uq_text_model_name")),
    )
    op.create_index("uq_text_model_one_default", "text_model", ["is_default"], unique=True,
                    postgresql_where=sa.text("is_default"), sqlite_where=sa.text("is_default"))


def downgrade() -> None:
    """Drop the text models, the full-text structure and the four image columns."""
    op.drop_index("uq_text_model_one_default", table_name="text_model")
    op.drop_table("text_model")
    _drop_full_text()
    with op.batch_alter_table("image") as batch:
        batch.drop_index("ix_image_topic")
        batch.drop_column("topic_score")
        batch.drop_column("topic")
        batch.drop_column("caption")
        batch.drop_column("title")
