"""A milvus-lite gRPC server in its own process (`lookalike index serve-milvus`): one Milvus
that several `lookalike` processes (API servers, workers) share, as they would share a cluster."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from lookalike.services.bench.search import free_port

READY_TIMEOUT_S = 60


@contextmanager
def milvus_lite_server(data_dir: Path, port: int | None = None) -> Iterator[str]:
    """Start `lookalike index serve-milvus` on the loopback port (a free one by default);
    yield its URI."""
    from pymilvus import MilvusClient, MilvusException

    port = port or free_port()
    log = data_dir.with_suffix(".log")
    process = subprocess.Popen(
        [sys.executable, "-m", "lookalike.services.cli", "index", "serve-milvus",
         "--data-dir", str(data_dir), "--port", str(port)],
        stdout=log.open("wb"), stderr=subprocess.STDOUT, env=os.environ.copy())
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            assert process.poll() is None, log.read_text(errors="replace")[-2000:]
            try:
                MilvusClient(uri=uri, timeout=2).close()
                break
            except MilvusException:
                assert time.monotonic() < deadline, "milvus-lite server did not answer"
                time.sleep(0.2)
        yield uri
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
        assert not engines_serving(data_dir), "the milvus-lite engine outlived its server"


def engines_serving(data_dir: Path) -> list[int]:
    """Pids of processes whose command line names the folder's database (the engine)."""
    wanted = str(data_dir / "milvus.db").encode()
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if wanted in cmdline.read_bytes():
                found.append(int(cmdline.parent.name))
        except OSError:  # the process ended while we looked
            continue
    return found
