"""`python -m lookalike.services.workers --concurrency N`: a Celery worker running lookalike's
jobs from LOOKALIKE_BROKER_URL until stopped (`lookalike worker` starts this)."""

from __future__ import annotations

import argparse
import os

from lookalike.services.config import get_settings
from lookalike.services.workers.tasks import build_worker_app


def main() -> None:
    parser = argparse.ArgumentParser(prog="lookalike worker", description=__doc__)
    parser.add_argument("--concurrency", type=int, default=1, help="batches run at once")
    args = parser.parse_args()
    app = build_worker_app(get_settings())
    app.worker_main(["worker", f"--concurrency={args.concurrency}", "--pool=threads",
                     "--loglevel=INFO", f"--hostname=lookalike-{os.getpid()}@%h",
                     "--without-gossip", "--without-mingle"])


main()
