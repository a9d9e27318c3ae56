"""One milvus-lite engine served over gRPC on this machine, so that several processes (API
servers, workers, the follower) share it as they would share a Milvus cluster; a `.db` path
is held by one process only."""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path

from lookalike.services.errors import InvalidRequest

log = logging.getLogger(__name__)


def serve_milvus_lite(data_dir: Path, host: str, port: int, stop: threading.Event) -> None:
    """Run milvus-lite's native engine on `host:port` over the files in `data_dir` until
    `stop` is set (SIGTERM and SIGINT set it too when called from the main thread)."""
    from milvus_lite.server import Server  # the engine binary ships in the wheel

    data_dir.mkdir(parents=True, exist_ok=True)
    if threading.current_thread() is threading.main_thread():  # before the engine answers
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
    server = Server(str(data_dir / "milvus.db"), address=f"{host}:{port}")
    if not server.init() or not server.start():
        raise InvalidRequest(f"milvus-lite could not start on {host}:{port} over {data_dir}: "
                             "is the port free and the folder not served by another process?")
    log.info("milvus-lite serving %s on %s:%d", data_dir, host, port)
    try:
        stop.wait()
    finally:
        server.stop()
