"""SQLAlchemy models of the catalog: images, spaces, embeddings, the change log, regions, jobs,
index snapshots and evaluations."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from lookalike.services.catalog.documents import (
    Document,
    JobParams,
    JobResult,
    SpaceOptions,
)

IMAGE_STATUSES = ("pending", "embedded", "failed", "deleted")
JOB_STATES = ("queued", "running", "succeeded", "failed", "cancelled")
CHANGE_OPS = ("add", "remove")

# Integer on SQLite so that the primary key is an alias of ROWID and autoincrements.
BIG_ID = BigInteger().with_variant(Integer, "sqlite")
# JSONB on PostgreSQL (comparable, indexable); plain JSON text elsewhere.
JSON_DOC = JSON().with_variant(JSONB, "postgresql")

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def _in(column: str, values: tuple[str, ...]) -> str:
    """SQL text `column IN ('a', 'b')` for a CHECK constraint over fixed string values."""
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def utcnow() -> datetime:
    """The current time, timezone-aware in UTC."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always read back timezone-aware (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}; the catalog stores timezone-aware UTC")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base whose metadata names every constraint (needed by SQLite batch moves)."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def _created() -> Mapped[datetime]:
    return mapped_column(
        UTCDateTime, default=utcnow, server_default=text("CURRENT_TIMESTAMP"), nullable=False
    )


class Image(Base):
    """One ingested image (or video frame), unique by the sha256 of its bytes."""

    __tablename__ = "image"
    __table_args__ = (CheckConstraint(_in("status", IMAGE_STATUSES), name="status"),)

    id: Mapped[int] = mapped_column(BIG_ID, primary_key=True, autoincrement=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    source_uri: Mapped[str] = mapped_column(Text)
    stored_path: Mapped[str | None] = mapped_column(Text)
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    format: Mapped[str | None] = mapped_column(String(16))
    byte_size: Mapped[int | None] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16), default="pending", server_default="pending")
    error: Mapped[str | None] = mapped_column(Text)
    collection: Mapped[str | None] = mapped_column(String(200), index=True)
    label: Mapped[str | None] = mapped_column(String(200), index=True)
    meta: Mapped[dict[str, Any]] = mapped_column(JSON_DOC, default=dict)
    # A video frame's clip and its time in seconds from the clip's start (migration 0010).
    video_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("video.id"), index=True
    )
    t: Mapped[float | None] = mapped_column(Float)
    # Words about the image (upload form, sidecar file, EXIF), searched by full text
    # (catalog/fulltext.py), and the topic a text model gave them.
    title: Mapped[str | None] = mapped_column(String(300))
    caption: Mapped[str | None] = mapped_column(Text)
    topic: Mapped[str | None] = mapped_column(String(100), index=True)
    topic_score: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime, default=utcnow, onupdate=utcnow, server_default=text("CURRENT_TIMESTAMP")
    )


class Video(Base):
    """One ingested clip, unique by the sha256 of its bytes; its sampled frames are image rows
    with `video_id` and `t`. `label`/`label_score` are a video classifier's answer."""

    __tablename__ = "video"

    id: Mapped[int] = mapped_column(BIG_ID, primary_key=True, autoincrement=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    source_uri: Mapped[str] = mapped_column(Text)
    stored_path: Mapped[str | None] = mapped_column(Text)
    byte_size: Mapped[int] = mapped_column(BigInteger)
    container: Mapped[str] = mapped_column(String(16))
    codec: Mapped[str] = mapped_column(String(32))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    fps: Mapped[float] = mapped_column(Float)
    duration: Mapped[float] = mapped_column(Float)
    collection: Mapped[str | None] = mapped_column(String(200), index=True)
    label: Mapped[str | None] = mapped_column(String(200), index=True)
    label_score: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = _created()


class Space(Base):
    """One embedding space: backbone + weights + layer + pooling + whitening + dimension.

    `filled_at` is when the space first held the whole catalog (it became the default, or a
    reindex job over it succeeded); from then on ingest embeds every new image into it."""

    __tablename__ = "space"
    __table_args__ = (
        # At most one row may have is_default true: the unique key only covers those rows.
        Index(
            "uq_space_one_default",
            "is_default",
            unique=True,
            postgresql_where=text("is_default"),
            sqlite_where=text("is_default"),
        ),
        # AUTOINCREMENT: SQLite never gives a deleted space's id to a new one, whose index
        # folder and snapshots are named by that id.
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(BIG_ID, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    backbone: Mapped[str] = mapped_column(String(100))
    weights_sha256: Mapped[str | None] = mapped_column(String(64))
    layer: Mapped[str] = mapped_column(String(100))
    pooling: Mapped[str] = mapped_column(String(32))
    whitening: Mapped[str | None] = mapped_column(String(100))
    dim: Mapped[int] = mapped_column(Integer)
    options: Mapped[SpaceOptions] = mapped_column(Document(SpaceOptions), default=SpaceOptions)
    is_default: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = _created()
    filled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Region(Base):
    """A box on an image (from a detector or a user), with its label and score.

    The box is x0, y0, x1, y1 in the original image's pixels (x1, y1 exclusive); `detector` is
    the detector's name, or 'user' for a box a person gave. It goes with its image: deleted
    with the row (cascade) and when the image is marked deleted."""

    __tablename__ = "region"
    __table_args__ = (
        CheckConstraint("x0 >= 0 AND y0 >= 0 AND x1 > x0 AND y1 > y0", name="box"),
    )

    id: Mapped[int] = mapped_column(BIG_ID, primary_key=True, autoincrement=True)
    image_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("image.id", ondelete="CASCADE"), index=True
    )
    label: Mapped[str | None] = mapped_column(String(200))
    score: Mapped[float | None] = mapped_column(Float)
    detector: Mapped[str] = mapped_column(String(100), index=True)
    created_at: Mapped[datetime] = _created()
    x0: Mapped[float] = mapped_column(Float)
    y0: Mapped[float] = mapped_column(Float)
    x1: Mapped[float] = mapped_column(Float)
    y1: Mapped[float] = mapped_column(Float)


class Embedding(Base):
    """The vector of an image (or a region) in a space: float32 little-endian bytes."""

    __tablename__ = "embedding"
    __table_args__ = (
        UniqueConstraint("space_id", "image_id", "region_id"),
        # NULLs are distinct in a unique key, so whole-image rows need their own partial one.
        Index(
            "uq_embedding_whole_image",
            "space_id",
            "image_id",
            unique=True,
            postgresql_where=text("region_id IS NULL"),
            sqlite_where=text("region_id IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BIG_ID, primary_key=True, autoincrement=True)
    space_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("space.id", ondelete="CASCADE"))
    image_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("image.id", ondelete="CASCADE"), index=True
    )
    region_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("region.id", ondelete="CASCADE"), index=True
    )
    vector: Mapped[bytes] = mapped_column(LargeBinary)
    seq: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = _created()


class IndexChange(Base):
    """One add or remove in a space; its id is the catalog sequence number replicas follow.

    In a region space (`SpaceOptions.regions_of`) each entry also names its region (0011)."""

    __tablename__ = "index_change"
    __table_args__ = (
        CheckConstraint(_in("op", CHANGE_OPS), name="op"),
        Index("ix_index_change_space_id_id", "space_id", "id"),
        # AUTOINCREMENT: SQLite never reuses a sequence number, even after deletes.
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(BIG_ID, primary_key=True, autoincrement=True)
    space_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("space.id", ondelete="CASCADE"))
    # No foreign key: the log outlives the image rows it mentions.
    image_id: Mapped[int] = mapped_column(BigInteger)
    # A region space's entries name their region too: its vectors are keyed by region id.
    region_id: Mapped[int | None] = mapped_column(BigInteger)
    op: Mapped[str] = mapped_column(String(8))
    created_at: Mapped[datetime] = _created()


class Job(Base):
    """A unit of background work (ingest, embed, build-index, ...) and its progress.

    The lease names the process running the job's batches in-process (`lease_owner`), which
    renews it (`lease_heartbeat_at`) before it lapses (`lease_expires_at`): another process
    takes over only a job whose lease is absent or has lapsed."""

    __tablename__ = "job"
    __table_args__ = (CheckConstraint(_in("state", JOB_STATES), name="state"),)

    id: Mapped[int] = mapped_column(BIG_ID, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(32), index=True)
    params: Mapped[JobParams] = mapped_column(Document(JobParams))
    state: Mapped[str] = mapped_column(
        String(16), default="queued", server_default="queued", index=True
    )
    progress_done: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    progress_total: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    result: Mapped[JobResult] = mapped_column(Document(JobResult), nullable=True)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime, default=utcnow, onupdate=utcnow, server_default=text("CURRENT_TIMESTAMP")
    )
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    lease_owner: Mapped[str | None] = mapped_column(String(255))
    lease_heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class IndexSnapshot(Base):
    """A FAISS index file written for a space, with the catalog watermark it contains."""

    __tablename__ = "index_snapshot"
    __table_args__ = (Index("ix_index_snapshot_space_id_id", "space_id", "id"),)

    id: Mapped[int] = mapped_column(BIG_ID, primary_key=True, autoincrement=True)
    space_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("space.id", ondelete="CASCADE"))
    path: Mapped[str] = mapped_column(Text)
    factory: Mapped[str] = mapped_column(String(200))
    vector_count: Mapped[int] = mapped_column(BigInteger)
    watermark: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = _created()


class Evaluation(Base):
    """One benchmark result of a space (mAP and the other figures), as `evaluate` computed it."""

    __tablename__ = "evaluation"
    __table_args__ = (Index("ix_evaluation_space_id_id", "space_id", "id"),)

    id: Mapped[int] = mapped_column(BIG_ID, primary_key=True, autoincrement=True)
    space_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("space.id", ondelete="CASCADE"))
    benchmark: Mapped[str] = mapped_column(String(100))
    map: Mapped[float] = mapped_column(Float)
    figures: Mapped[dict[str, Any]] = mapped_column(JSON_DOC, default=dict)
    created_at: Mapped[datetime] = _created()


class ApiKey(Base):
    """An API key: its name, the sha256 of its secret (never the secret), its scopes, and
    when it was revoked (revoked keys stay listed, and never authenticate again)."""

    __tablename__ = "api_key"

    id: Mapped[int] = mapped_column(BIG_ID, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    secret_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = _created()
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class TextModel(Base):
    """A trained text classifier (text-CNN) file, content-addressed by its sha256; the
    default one gives captions their topic at ingest and answers /v1/text/classify."""

    __tablename__ = "text_model"
    __table_args__ = (
        Index(
            "uq_text_model_one_default",
            "is_default",
            unique=True,
            postgresql_where=text("is_default"),
            sqlite_where=text("is_default"),
        ),
    )

    id: Mapped[int] = mapped_column(BIG_ID, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    sha256: Mapped[str] = mapped_column(String(64))
    path: Mapped[str] = mapped_column(Text)
    classes: Mapped[list[str]] = mapped_column(JSON_DOC)
    figures: Mapped[dict[str, Any]] = mapped_column(JSON_DOC, default=dict)
    is_default: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    trained_by_job: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = _created()


class VectorFollower(Base):
    """How far a space's external vector store (Milvus) has applied the change log: the
    follower commits this watermark after each batch it wrote there, so a crash replays from
    it (its writes are upserts and deletes keyed by image id, safe to repeat)."""

    __tablename__ = "vector_follower"

    space_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("space.id", ondelete="CASCADE"), primary_key=True)
    watermark: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime, default=utcnow, onupdate=utcnow, server_default=text("CURRENT_TIMESTAMP"))
