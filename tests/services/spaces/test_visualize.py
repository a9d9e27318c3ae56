"""A space's backbone made visible on a small real catalog (the bundled photos, MobileNetV2):
the filter grid, the top-patch pass over the catalog, and the saliency map."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lookalike.retrieval.embedding.embedder import image_to_pixels
from lookalike.retrieval.training.network import trunk_blocks
from lookalike.services.errors import InvalidRequest
from lookalike.services.jobs import runner as jobs
from lookalike.services.runtime import Runtime
from lookalike.services.setup import init_catalog, open_runtime
from lookalike.services.spaces import visualize
from tests.services.conftest import ingest_into, make_settings

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory, photo_dir: Path) -> Iterator[Runtime]:
    settings = make_settings(tmp_path_factory.mktemp("visualize") / "home")
    init_catalog(settings)
    runtime = open_runtime(settings)
    ingest_into(runtime, photo_dir)
    yield runtime
    runtime.close()


def test_filter_grid_shows_every_first_layer_filter(runtime: Runtime, tmp_path: Path) -> None:
    path = visualize.write_filters(runtime, space_name=None, out=tmp_path / "filters.png")
    grid = np.asarray(Image.open(path))
    assert grid.shape == (6 * 34 + 2, 6 * 34 + 2, 3)  # 32 filters of MobileNetV2: 6x6 tiles
    tiles = [grid[2 + r * 34: 34 + r * 34, 2 + c * 34: 34 + c * 34] for r in range(6)
             for c in range(6)]
    assert len({tile.tobytes() for tile in tiles[:32]}) == 32  # distinct learned filters
    assert all((tile == 255).all() for tile in tiles[32:])  # the unused cells stay blank


def test_top_patches_rank_the_catalog_by_one_channel(runtime: Runtime, tmp_path: Path,
                                                     photo_dir: Path) -> None:
    path, top = visualize.write_top_patches(runtime, space_name=None, layer=4, channel=7,
                                            out=tmp_path / "top.png")
    count = len(list(photo_dir.iterdir()))
    assert len(top) == min(visualize.TOP, count)
    values = [value for _, value in top]
    assert values == sorted(values, reverse=True)
    backbone = visualize.open_backbone(runtime, None)
    image_id, best = top[0]
    stored = visualize._catalog_paths(runtime, [image_id])[0][1]
    pixels = image_to_pixels(Image.open(stored), size=224)[None]
    maps = visualize._block_maps(trunk_blocks(backbone.trunk), backbone.inputs(pixels), 4)
    assert float(maps[0, 7].max()) == pytest.approx(best, rel=1e-4)
    assert Image.open(path).size[0] == 3 * (visualize.PATCH_TILE + 2) + 2
    with pytest.raises(InvalidRequest, match="layer 99"):
        visualize.write_top_patches(runtime, space_name=None, layer=99, channel=0,
                                    out=tmp_path / "no.png")


def test_saliency_is_drawn_over_the_image(runtime: Runtime, photo_dir: Path,
                                             tmp_path: Path) -> None:
    photo = sorted(photo_dir.iterdir())[0]
    path = visualize.write_saliency(runtime, space_name=None, image=photo,
                                    out=tmp_path / "saliency.png")
    overlay = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32)
    plain = np.asarray(Image.open(photo).convert("RGB").resize((224, 224)), dtype=np.float32)
    assert overlay.shape == plain.shape
    assert np.abs(overlay - plain).mean() > 1.0  # the heat map is drawn


def test_a_top_patches_job_stores_its_sheet_and_ranking(runtime: Runtime) -> None:
    job = jobs.submit_top_patches(runtime, space_name=None, layer=4, channel=7, limit=6,
                                  wait=True)
    assert job.state == "succeeded", job.error
    folder = runtime.settings.layout.job(job.id)
    assert job.result.patches == f"jobs/{job.id}/top-patches.png"  # home-relative
    assert runtime.settings.layout.resolve(job.result.patches) == folder / "top-patches.png"
    assert Image.open(folder / "top-patches.png").size[0] == 3 * (visualize.PATCH_TILE + 2) + 2
    ranking = json.loads((folder / "top-patches.json").read_text())
    assert [(hit["image_id"], hit["response"]) for hit in ranking] == job.result.top
    assert len(ranking) == 6  # only the first `limit` images were looked at
    shown = jobs.describe(job)["top_patches"]
    assert shown["png"] == job.result.patches and shown["top"] == ranking
    with pytest.raises(InvalidRequest, match="channel 9999 does not exist; block 4"):
        jobs.submit_top_patches(runtime, space_name=None, layer=4, channel=9999)


def test_saliency_of_uploaded_bytes_against_a_catalog_image(runtime: Runtime,
                                                            photo_dir: Path) -> None:
    photo = sorted(photo_dir.iterdir())[0]
    space = visualize.open_backbone(runtime, None).space.name
    first = visualize._catalog_paths(runtime, None, 2)
    itself = visualize.saliency_png(runtime, space_name=space, data=photo.read_bytes())
    against = visualize.saliency_png(runtime, space_name=space, data=photo.read_bytes(),
                                     match_id=first[1][0])
    assert Image.open(io.BytesIO(itself)).size == (224, 224)
    assert itself != against  # the score's target changes the map
    with pytest.raises(InvalidRequest, match="image 999999 is not in the catalog"):
        visualize.saliency_png(runtime, space_name=space, data=photo.read_bytes(),
                               match_id=999999)
