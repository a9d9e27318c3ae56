"""The one settings object: every knob of the running system, read from LOOKALIKE_* variables."""

from __future__ import annotations

import os
import platform
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy import make_url

from lookalike.retrieval.embedding.fork_gate import start_method
from lookalike.retrieval.models.engine_names import EngineName
from lookalike.retrieval.models.specs import DEFAULT_BACKBONE
from lookalike.services.ingest.addresses import allow_entry
from lookalike.services.storage.layout import DataLayout


def _default_torch_home() -> Path:
    """torchvision's own cache root: $TORCH_HOME, else ~/.cache/torch."""
    return Path(os.environ.get("TORCH_HOME", Path.home() / ".cache" / "torch"))


def usable_cpus() -> int:
    """The cores this process may run on (its affinity mask: a container's or taskset's
    limit), which os.cpu_count() ignores."""
    return len(os.sched_getaffinity(0))


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo), else what platform knows."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


class Settings(BaseSettings):
    """Configuration of lookalike; environment variables use the prefix LOOKALIKE_."""

    model_config = SettingsConfigDict(env_prefix="LOOKALIKE_", extra="ignore")

    home: Path = Field(Path("lookalike-data"), validate_default=True,
                       description="catalog, indexes, originals, thumbs (made absolute)")
    database_url: str | None = Field(None, description="SQLAlchemy URL; SQLite under home if unset")
    torch_home: Path = Field(default_factory=_default_torch_home)
    backbone: str = DEFAULT_BACKBONE
    pooling: str = "gap"
    index_factory: str = "Flat"
    vector_backend: Literal["faiss", "milvus"] = Field(
        "faiss", description="backend of the default space created by the first ingest")
    max_upload_bytes: int = 25 * 1024 * 1024
    max_pixels: int = 40_000_000
    max_video_bytes: int = Field(500 * 1024 * 1024, ge=1, description="largest video file "
                                 "ingested (its frames obey max_pixels)")
    max_video_seconds: float = Field(3 * 3600, gt=0, description="longest video ingested")
    max_video_frames: int = Field(500_000, ge=1, description="most frames a video may hold")
    video_every_s: float = Field(2.0, gt=0, description="a video frame is indexed at every "
                                 "shot change and at least this often (seconds)")
    moment_refine: bool = Field(True, description="search: the best clip's moment is "
                                "re-ranked among its frames by registering the still onto "
                                "them (services/search/moments.py); a request may switch it")
    moment_frames: int = Field(32, ge=1, le=500, description="most frames of the clip "
                               "(its best by the global vector) that the moment is re-ranked "
                               "among: bounds the time it adds to a search")
    moment_anchors: int = Field(3, ge=0, le=50, description="search: around this many of "
                                "the best clip's best re-ranked frames, the stored clip is "
                                "decoded at its own frame rate (within video_every_s) and the "
                                "moment is the decoded frame the still matches best, not only "
                                "an indexed one; 0 switches it off")
    thumbnail_size: int = 256
    # Where the model runs one thread (2 cores), ingest and re-index run one worker a core,
    # each decoding and embedding its own batches; elsewhere half the cores decode and the
    # other half run the model. `lookalike bench ingest` measures either (README, "Speed").
    batch_size: int = 32
    # Which call size is fastest depends on the engine and the CPU's caches (`lookalike bench
    # forward` prints each size's images/s), so unset it is measured (services/spaces/call_size).
    forward_batch: int | None = Field(
        None, ge=1, description="images per model call; unset = the fastest of 1, 2, 4 and 8 "
        "for the space's engine on this CPU, measured once and kept in the engine folder")
    decode_workers: int | None = Field(None, ge=0, description="ingest's worker processes; "
                                       "unset: a core each where they embed, else half the "
                                       "cores")
    torch_threads: int | None = Field(None, description="unset: the cores half the cores "
                                      "decoding leave free")
    embed_in_workers: bool | None = Field(None, description="ingest's workers run the model "
                                          "on what they decode; unset: where it runs one "
                                          "thread")
    # A training epoch decodes nothing beside its model: a detector's finder epoch took 741 s
    # on 2 threads against 1,086 s on 1 (README, "Two stages").
    train_threads: int | None = Field(None, ge=1, description="torch threads of a training "
                                      "epoch; unset: every usable core")
    bf16: bool | None = Field(None, description="bfloat16 weights; unset = where the CPU has it")
    channels_last: bool = True
    # A frozen TorchScript graph runs a whole model call without taking the GIL between
    # layers, so the catalog writer thread does not stall it; ingest ran ~6 % faster end to
    # end (README: `lookalike bench ingest`, with and without LOOKALIKE_FROZEN_GRAPH=false).
    frozen_graph: bool = True
    serve_workers: int = Field(1, ge=1, le=64, description="`lookalike serve` processes "
                               "sharing the port (a container sets it for its cores); one "
                               "per core serves the most uploads")
    query_batch: int = Field(8, ge=1, description="most query images (searches by upload or "
                             "URL) that concurrent requests embed in one model call")
    # FAISS's OpenMP threads. One: a single query's scan is too short to share, and on a
    # busy machine idle OpenMP threads spin on the cores the model needs (README "Speed").
    index_threads: int = Field(1, ge=1, description="FAISS (OpenMP) threads per process")
    query_batch_wait_ms: float = Field(
        2.0, ge=0, description="longest wait of a queued query image for others still being "
        "decoded to join its model call; a lone query never waits")
    engine: EngineName | None = Field(
        None, description="inference engine of new spaces; unset = the fastest installed one "
        "whose vectors match torch's fp32 ones on the bundled photos")
    engine_cache: Path | None = Field(
        None, description="exported engine models; unset = <home>/engines")
    engine_static_shapes: int = Field(
        4, ge=0, le=64, description="input shapes per OpenVINO trunk that get a model "
        "compiled for their own shape (faster; each holds buffers of its own, larger for "
        "larger batches); 0 = the dynamic-shape model only")
    snapshot_keep: int = 2
    log_format: Literal["text", "json"] = Field("text", description="API log lines: text or json")
    broker_url: str | None = Field(None, description="Celery broker (Redis); unset = in-process")
    job_batch_size: int = Field(64, description="items per job batch (one task each)")
    detector: str | None = Field(None, description="POST /v1/detect's detector when the "
                                 "request names none (`lookalike detect list`)")
    detect_defaults: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=dict, description="the detector every ingest into a collection runs "
        "when it names none (CLI, upload, ingest job): comma-separated collection=detector "
        "pairs, e.g. 'people=faces,shop=products'")
    job_max_retries: int = Field(3, description="retries of a failing batch before it fails")
    job_visibility_timeout_s: int = Field(
        600, description="seconds before a batch taken by a dead worker is handed out again")
    job_lease_s: float = Field(
        60.0, gt=0, description="seconds an in-process job runner's lease on a job lasts "
        "unless renewed (it renews every third of that); a server starting up takes over "
        "only unfinished jobs whose lease has lapsed")
    url_timeout_s: float = Field(30.0, gt=0, description="deadline of one URL fetch: every "
                                 "connection, redirect and the body's last byte")
    fetch_connect_timeout_s: float = Field(5.0, gt=0, description="URL fetch: connect timeout")
    fetch_read_timeout_s: float = Field(10.0, gt=0,
                                        description="URL fetch: longest wait for the next bytes")
    fetch_max_redirects: int = Field(5, ge=0, description="URL fetch: redirects followed")
    fetch_ports: Annotated[list[Annotated[int, Field(ge=1, le=65535)]], NoDecode] = Field(
        [80, 443], description="ports a URL fetch may use on public hosts (comma-separated)")
    fetch_allow: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="host names, addresses and CIDR networks a URL fetch "
        "may reach although not public, on any port (comma-separated; empty: none)")
    job_queue: str = Field("lookalike", description="Celery queue the workers consume")
    auth: Literal["auto", "on", "off"] = Field(
        "auto", description="API keys: auto = required once a key exists or serve listens "
        "beyond loopback; off = never (logged)")
    metrics_open: bool = Field(False, description="serve /metrics without the admin scope")
    bootstrap_key: SecretStr | None = Field(
        None, description="an admin key `lookalike init` registers (deployments' first key)")
    max_json_bytes: int = Field(1024 * 1024, description="cap on a JSON request body")
    allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["localhost", "127.0.0.1", "[::1]"],
        description="Host header names served (comma-separated; '*' for any): guards against "
        "DNS rebinding")
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="origins whose pages may call the API (CORS; "
        "comma-separated)")
    rate_search: str = Field("600/minute", description="searches by id per key or address")
    rate_search_upload: str = Field("60/minute", description="searches by upload per key")
    rate_ingest: str = Field("120/minute", description="uploads and ingest requests per key")
    rate_admin: str = Field("60/minute", description="admin requests per key")
    rate_namespace: str = Field("lookalike", description="rate-limit counters' key prefix")
    max_concurrent_uploads: int = Field(4, ge=1, description="uploads decoded at once")
    text_min_confidence: float = Field(0.6, gt=0, lt=1, description="a topic less probable "
                                       "than this is answered as low confidence")
    max_text_bytes: int = Field(65_536, ge=1024, description="largest text a request may "
                                "classify or search (UTF-8 bytes)")
    milvus_uri: str | None = Field(
        None, description="where spaces with backend milvus keep their vectors: a cluster "
        "address (http://host:19530) or a local path ending in .db (embedded milvus-lite, one "
        "process at a time); unset: milvus.db under home")
    milvus_token: SecretStr | None = Field(None, description="Milvus user:password or token")
    milvus_connect_timeout: float = Field(
        60.0, gt=0, description="seconds to wait for Milvus to answer the first call (an "
        "embedded milvus-lite server starts a process of its own, slow on a loaded machine)")
    milvus_prefix: str = Field("lookalike", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
                               description="collection name prefix (one per deployment "
                               "sharing a Milvus cluster)")
    ingest_roots: Annotated[list[Path], NoDecode] = Field(
        default_factory=list, description="folders an HTTP ingest job may read "
        "(comma-separated); none: server paths are refused over HTTP")

    @field_validator("fetch_ports", "fetch_allow", "allowed_hosts", "cors_origins",
                     "ingest_roots", mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        """Lists come from the environment as comma-separated text: "80,443"."""
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("detect_defaults", mode="before")
    @classmethod
    def _split_pairs(cls, value: object) -> object:
        """From the environment, "people=faces,shop=products": collection -> detector."""
        if not isinstance(value, str):
            return value
        pairs: dict[str, str] = {}
        for part in filter(None, (p.strip() for p in value.split(","))):
            collection, sep, name = (s.strip() for s in part.partition("="))
            if not (sep and collection and name):
                raise ValueError(f"detect_defaults entry {part!r} is not collection=detector")
            pairs[collection] = name
        return pairs

    @field_validator("home")
    @classmethod
    def _absolute_home(cls, home: Path) -> Path:
        """Resolved once, here: every path derived from the home, and every file the catalog
        records relative to it, then means the same folder whatever the working directory."""
        return home.expanduser().resolve()

    @field_validator("fetch_allow")
    @classmethod
    def _check_allow_entries(cls, entries: list[str]) -> list[str]:
        return [allow_entry(entry) for entry in entries]

    @model_validator(mode="after")
    def _split_cores(self) -> Settings:
        """Unless set: the model gets the cores that half the cores decoding leave free
        (those decode workers asked for, if fewer); where that is one thread the workers
        embed too, one a core; training gets every core."""
        cores = usable_cpus()
        half = max(1, cores // 2)
        if self.torch_threads is None:
            decoding = half if self.decode_workers is None else self.decode_workers
            self.torch_threads = max(1, cores - decoding)
        if self.embed_in_workers is None:
            self.embed_in_workers = self.torch_threads == 1 and start_method() == "fork"
        elif self.embed_in_workers and self.torch_threads != 1:
            raise ValueError("LOOKALIKE_EMBED_IN_WORKERS=true needs LOOKALIKE_TORCH_THREADS=1: "
                             "each worker runs the model on one thread (a forked process has "
                             f"one), not {self.torch_threads}; set both, or neither")
        if self.decode_workers is None:
            self.decode_workers = cores if self.embed_in_workers else half
        if self.train_threads is None:
            self.train_threads = cores
        return self

    @property
    def layout(self) -> DataLayout:
        """Where each kind of file lives under `home`."""
        return DataLayout(self.home)

    @property
    def milvus_address(self) -> str:
        """The Milvus URI spaces with backend milvus use: the explicit one, or milvus-lite's
        folder under home."""
        return self.milvus_uri or str((self.home / "milvus.db").resolve())

    @property
    def engine_dir(self) -> Path:
        """Where models exported for inference engines are kept."""
        return self.engine_cache if self.engine_cache is not None else self.layout.engines

    @property
    def catalog_url(self) -> str:
        """The catalog's SQLAlchemy URL: the explicit one, or a SQLite file under home."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.layout.catalog_db}"

    @property
    def catalog_url_shown(self) -> str:
        """The catalog URL as messages may print it: any password masked."""
        return make_url(self.catalog_url).render_as_string(hide_password=True)


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()
