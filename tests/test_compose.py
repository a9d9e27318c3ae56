"""docker-compose.yml is valid and wires the scale-out processes (Docker cannot run here)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SERVICES = {"postgres", "redis", "migrate", "api1", "api2", "worker1", "worker2", "gateway"}
MILVUS_SERVICES = {"etcd", "minio", "milvus", "milvus-follower"}


def compose_command() -> list[str]:
    """`docker compose` (the plugin) where it works, else Debian's `docker-compose`."""
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"],
                                                 capture_output=True).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    pytest.fail("neither `docker compose` nor `docker-compose` works here; install Debian's "
                "docker-compose (`make system-deps` does)", pytrace=False)


SECRETS = {"POSTGRES_PASSWORD": "pw-from-env-file", "LOOKALIKE_BOOTSTRAP_KEY": "lk_" + "k" * 43}


def compose(*args: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run([*compose_command(), "-f", str(ROOT / "docker-compose.yml"), *args],
                          capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, **SECRETS, **(env or {})})
    assert done.returncode == 0, done.stderr
    return done.stdout


def started(*profiles: str) -> set[str]:
    """The services `up` starts with these profiles: those with no profile or one of them
    (docker-compose 1.x lists every service in `config --services`, whatever the profile)."""
    services = yaml.safe_load(compose(*[f"--profile={p}" for p in profiles], "config"))
    return {name for name, spec in services["services"].items()
            if not spec.get("profiles") or set(spec["profiles"]) & set(profiles)}


def test_compose_file_is_valid_and_starts_every_process() -> None:
    assert started() == SERVICES
    resolved = compose("config")
    assert resolved.count("    - worker\n") == 2 and resolved.count("    - serve\n") == 2
    assert "redis://redis:6379/0" in resolved and "postgresql+psycopg://" in resolved
    assert resolved.count("healthcheck:") >= 5
    assert "service_completed_successfully" in resolved
    assert (ROOT / "Dockerfile").is_file() and (ROOT / "deploy" / "nginx.conf").is_file()


def test_compose_takes_its_secrets_from_the_environment_file_and_requires_keys() -> None:
    resolved = compose("config")
    assert "pw-from-env-file" in resolved and SECRETS["LOOKALIKE_BOOTSTRAP_KEY"] in resolved
    assert "LOOKALIKE_AUTH: 'on'" in resolved or 'LOOKALIKE_AUTH: "on"' in resolved
    example = (ROOT / ".env.example").read_text()
    assert "POSTGRES_PASSWORD=" in example and "LOOKALIKE_BOOTSTRAP_KEY=" in example
    missing = subprocess.run([*compose_command(), "-f", str(ROOT / "docker-compose.yml"),
                              "config"], capture_output=True, text=True, cwd=ROOT,
                             env={k: v for k, v in os.environ.items() if k not in SECRETS})
    assert missing.returncode != 0 and "set it in .env" in missing.stderr


def test_the_milvus_profile_adds_milvus_standalone_and_points_the_processes_at_it() -> None:
    assert started("milvus") == SERVICES | MILVUS_SERVICES
    resolved = compose("--profile", "milvus", "config")
    assert "milvusdb/milvus:" in resolved and "quay.io/coreos/etcd:" in resolved
    assert "minio/minio:" in resolved and "ETCD_ENDPOINTS: etcd:2379" in resolved
    assert "MINIO_ADDRESS: minio:9000" in resolved
    # every lookalike process (two APIs, two workers, migrate, the follower) knows the address
    assert resolved.count("LOOKALIKE_MILVUS_URI: http://milvus:19530") == 6
    assert "    - follow\n" in resolved
