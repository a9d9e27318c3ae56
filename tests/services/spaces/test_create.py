"""Spaces with options: whitening fitted on the catalog, resumable reindex, αQE, index build."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from lookalike.retrieval.errors import WeightsMismatch, WeightsNotFound, WhiteningError
from lookalike.retrieval.models.registry import file_sha256, get_backbone, resolve_weights
from lookalike.services.catalog import embeddings as embedding_queries
from lookalike.services.errors import InvalidRequest
from lookalike.services.index.build import build_space_index, parse_bytes
from lookalike.services.runtime import Runtime
from lookalike.services.search.query import search_vector
from lookalike.services.spaces.create import SpaceDefinition, create_space
from lookalike.services.spaces.lookup import build_embedder
from tests.services.conftest import fill_space

pytestmark = pytest.mark.slow


def jpeg(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def test_whitened_gem_space_is_filled_resumably_and_searched_with_qe(
        photo_home: Runtime) -> None:
    runtime = photo_home
    definition = SpaceDefinition(pooling="gem", whiten_dim=8, qe_n=3)
    space = create_space(runtime, name="gem-w8", definition=definition)
    assert (space.dim, space.whitening, space.is_default) == (8, "pca8", False)
    sha = space.options.whitening_sha256
    assert (runtime.settings.layout.whitening / f"{sha}.npz").is_file()
    assert space.options.whitening_fitted_on == 23

    first = fill_space(runtime, "gem-w8")
    again = fill_space(runtime, "gem-w8")
    assert (first["added"], first["duplicates"], first["failed"]) == (23, 0, 0)
    assert (again["added"], again["duplicates"]) == (0, 23)
    with runtime.session() as session:
        blob = embedding_queries.get_vector(session=session, space_id=space.id, image_id=1)
    assert np.linalg.norm(np.frombuffer(blob, dtype="<f4")) == pytest.approx(1.0, abs=1e-5)

    photo = ImageOps.mirror(Image.open(runtime.settings.layout.originals.rglob("*.jpg").__next__()))
    plain = search_vector(runtime, space_name="gem-w8", k=5, query=jpeg(photo), qe=False)
    expanded = search_vector(runtime, space_name="gem-w8", k=5, query=jpeg(photo), qe=True)
    default = search_vector(runtime, space_name=None, k=5, query=jpeg(photo))
    assert plain.space == "gem-w8" and default.space != "gem-w8"
    assert [h.score for h in plain.results] != [h.score for h in expanded.results]
    assert plain.results[0].image_id == default.results[0].image_id


def test_a_tampered_whitening_file_is_refused(photo_home: Runtime) -> None:
    space = create_space(photo_home, name="w4", definition=SpaceDefinition(whiten_dim=4))
    path = photo_home.settings.layout.whitening / f"{space.options.whitening_sha256}.npz"
    path.write_bytes(path.read_bytes() + b"x")
    with pytest.raises(WhiteningError, match="sha256"):
        build_embedder(space, settings=photo_home.settings)
    path.unlink()
    with pytest.raises(WhiteningError, match="missing"):
        build_embedder(space, settings=photo_home.settings)


def test_learned_whitening_says_what_it_needs(photo_home: Runtime, photo_dir: Path) -> None:
    with pytest.raises(InvalidRequest, match="needs images of at least 2 labels"):
        create_space(photo_home, name="lw", definition=SpaceDefinition(
            whiten_dim=4, whiten_labels=True))  # the catalog's photos carry no labels
    with pytest.raises(InvalidRequest, match="needs images of at least 2 labels"):
        create_space(photo_home, name="lw", definition=SpaceDefinition(
            whiten_dim=4, whiten_labels=True, whiten_from=photo_dir))  # no sub-folders
    with pytest.raises(InvalidRequest, match="needs a dimension"):
        create_space(photo_home, name="lw", definition=SpaceDefinition(whiten_labels=True))
    with pytest.raises(InvalidRequest, match="PCA whitening only"):
        create_space(photo_home, name="lw", definition=SpaceDefinition(
            whiten_dim=4, whiten_labels=True, whiten_shrinkage=0.5))


def test_index_build_records_the_choice_and_searches_keep_working(photo_home: Runtime) -> None:
    report = build_space_index(photo_home, space_name=None, target_recall=0.95,
                               max_bytes=parse_bytes("1GB"))
    assert (report.vectors, report.held_out, report.choice.factory) == (23, 2, "Flat")
    assert report.choice.recall == 1.0 and report.snapshot.vectors == 23
    result = search_vector(photo_home, space_name=None, k=3, image_id=5)
    assert result.results[0].image_id == 5


def test_memory_sizes_parse_with_units() -> None:
    assert (parse_bytes("4GB"), parse_bytes("512mb"), parse_bytes("1e6")) == (
        4 * 2**30, 512 * 2**20, 1_000_000)
    with pytest.raises(InvalidRequest, match="4GB"):
        parse_bytes("lots")


def test_a_space_built_from_a_given_weight_file_records_and_checks_it(
        photo_home: Runtime, tmp_path) -> None:
    spec = get_backbone("mobilenet_v2")
    packaged = resolve_weights(spec, explicit=None, torch_home=tmp_path / "empty-cache")
    given = tmp_path / "my-weights.pth"
    given.write_bytes(packaged.read_bytes())
    space = create_space(photo_home, name="given", definition=SpaceDefinition(weights=given))
    assert space.options.weights_file == str(given.resolve())
    assert space.weights_sha256 == file_sha256(given)
    assert fill_space(photo_home, "given")["added"] == 23

    given.write_bytes(packaged.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(WeightsMismatch, match="given"):
        build_embedder(space, settings=photo_home.settings)
    with pytest.raises(WeightsNotFound, match="nowhere.pth"):
        create_space(photo_home, name="missing",
                     definition=SpaceDefinition(weights=tmp_path / "nowhere.pth"))


def test_a_space_embeds_at_its_own_input_size(photo_home: Runtime) -> None:
    """A network fine-tuned at 128 px (finetune --input-size) is run at 128 px: the size the
    space stores is the one its embedder resizes to, for the catalog and for queries."""
    small = create_space(photo_home, name="small", definition=SpaceDefinition(
        pooling="gem", input_size=128, whiten_dim=8))
    full = create_space(photo_home, name="full", definition=SpaceDefinition(pooling="gem"))
    assert (small.options.input_size, full.options.input_size) == (128, 224)
    embedder = build_embedder(small, settings=photo_home.settings)
    photo = Image.open(next(photo_home.settings.layout.originals.rglob("*.jpg")))
    assert embedder.input_size == 128 and embedder.to_tensor(photo).shape == (3, 128, 128)
    assert build_embedder(full, settings=photo_home.settings).input_size == 224
    assert fill_space(photo_home, "small")["added"] == 23
    hit = search_vector(photo_home, space_name="small", k=1, query=jpeg(photo))
    assert hit.results[0].score == pytest.approx(1.0, abs=1e-3)
    with pytest.raises(InvalidRequest, match="input_size"):
        create_space(photo_home, name="tiny", definition=SpaceDefinition(input_size=8))
