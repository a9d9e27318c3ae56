"""Descriptor options of the embedder: multi-scale extraction, R-MAC/GeM, PCA whitening."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps
from skimage import data

from lookalike.retrieval.embedding.embedder import Embedder, EmbedderOptions
from lookalike.retrieval.embedding.whitening import fit_pca_whitening
from lookalike.retrieval.models.registry import (
    get_backbone,
    load_feature_extractor,
    resolve_weights,
)

MOBILENET = get_backbone("mobilenet_v2")
PHOTOS = [data.chelsea, data.astronaut, data.coffee, data.rocket, data.camera, data.coins]


@pytest.fixture(scope="module")
def extractor(tmp_path_factory: pytest.TempPathFactory) -> torch.nn.Module:
    weights = resolve_weights(MOBILENET, explicit=None,
                              torch_home=tmp_path_factory.mktemp("torch-home"))
    return load_feature_extractor(MOBILENET, weights=weights)


@pytest.fixture(scope="module")
def photos() -> list[Image.Image]:
    return [Image.fromarray(load()).convert("RGB") for load in PHOTOS]


def embedder(extractor: torch.nn.Module, **options: object) -> Embedder:
    return Embedder(extractor, spec=MOBILENET, options=EmbedderOptions(batch_size=8, **options))


def test_multiscale_is_the_normalised_sum_of_single_scale_descriptors(
        extractor: torch.nn.Module, photos: list[Image.Image]) -> None:
    """Scales (1, 1/sqrt2, 1/2) sum the per-scale unit descriptors and re-normalise."""
    scales = (1.0, 2**-0.5, 0.5)
    combined = embedder(extractor, scales=scales).embed_images(photos[:2])
    tensors = torch.stack([embedder(extractor).to_tensor(p) for p in photos[:2]])
    per_scale = []
    for scale in scales:
        size = round(224 * scale)
        resized = torch.nn.functional.interpolate(
            tensors.float(), size=(size, size), mode="bilinear", antialias=True)
        per_scale.append(embedder(extractor).embed_tensors(resized.round().clamp(0, 255)
                                                            .to(torch.uint8)))
    expected = sum(per_scale)
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    assert np.allclose(combined, expected, atol=2e-2)
    assert not np.allclose(combined, per_scale[0], atol=1e-3)
    assert np.allclose(np.linalg.norm(combined, axis=1), 1.0, atol=1e-5)


def test_rmac_embeddings_are_unit_vectors_and_find_a_mirrored_photo(
        extractor: torch.nn.Module, photos: list[Image.Image]) -> None:
    rmac = embedder(extractor, pooling="rmac")
    gallery = rmac.embed_images(photos)
    query = rmac.embed_images([ImageOps.mirror(photos[0])])
    assert np.allclose(np.linalg.norm(gallery, axis=1), 1.0, atol=1e-5)
    assert int(np.argmax(gallery @ query[0])) == 0


def test_whitening_sets_the_dimension_and_is_applied_to_every_vector(
        extractor: torch.nn.Module, photos: list[Image.Image]) -> None:
    raw = embedder(extractor, pooling="gem").embed_images(photos)
    whitening = fit_pca_whitening(raw, dim=4)
    whitened = Embedder(extractor, spec=MOBILENET, options=EmbedderOptions(pooling="gem"),
                        whitening=whitening)
    vectors = whitened.embed_images(photos)
    assert whitened.dim == 4
    assert vectors.shape == (6, 4)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_a_whitening_of_another_dimension_is_refused(extractor: torch.nn.Module) -> None:
    whitening = fit_pca_whitening(np.random.default_rng(0).normal(size=(10, 8)), dim=3)
    with pytest.raises(ValueError, match="dimension 8"):
        Embedder(extractor, spec=MOBILENET, options=EmbedderOptions(), whitening=whitening)


def test_scales_outside_the_allowed_range_are_refused(extractor: torch.nn.Module) -> None:
    with pytest.raises(ValueError, match="scales"):
        embedder(extractor, scales=(1.0, 0.0))
