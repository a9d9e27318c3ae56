"""A process serving searches from a kept OpenVINO export never imports torchvision: its
import pulls in torch._dynamo (seconds of every server start, retrieval/models/vision.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lookalike.services.setup import init_catalog, open_runtime
from tests.services.conftest import ingest_into, make_settings

pytestmark = pytest.mark.slow

SERVE = """
import sys
from lookalike.services.api.app import create_app
from lookalike.services.config import get_settings
from lookalike.services.search.query import search_vector
from lookalike.services.setup import open_runtime, warm_up
runtime = open_runtime(get_settings())
warm_up(runtime)
upload = search_vector(runtime, space_name=None, k=1, query=open(sys.argv[1], "rb").read())
by_id = search_vector(runtime, space_name=None, k=1, image_id=upload.results[0].image_id)
print("found", upload.results[0].image_id, by_id.results[0].image_id)
print("torchvision imported:", "torchvision" in sys.modules)
"""


def test_a_search_by_upload_and_by_id_runs_without_importing_torchvision(
        tmp_path: Path, photo_dir: Path) -> None:
    settings = make_settings(tmp_path / "home", engine="openvino-fp32")
    init_catalog(settings)
    runtime = open_runtime(settings)
    ingest_into(runtime, photo_dir)  # exports the trunk for OpenVINO when the cache lacks it
    runtime.close()
    photo = sorted(photo_dir.glob("*.jpg"))[0]
    env = {**os.environ, "LOOKALIKE_HOME": str(settings.home)}
    result = subprocess.run([sys.executable, "-c", SERVE, str(photo)], capture_output=True,
                            text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr
    found = result.stdout.split("found ")[1].split()
    assert found[0] == found[1]
    assert "torchvision imported: False" in result.stdout
