"""Batched embedding with real MobileNetV2 weights on real photos from scikit-image."""

from __future__ import annotations

import dataclasses
import functools
import gc
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps
from skimage import data

from lookalike.retrieval.embedding import embedder as embedder_module
from lookalike.retrieval.embedding.embedder import (
    EmbeddedBatch,
    Embedder,
    EmbedderOptions,
    Prepared,
    PrepareFailed,
    image_to_pixels,
    native_bf16,
)
from lookalike.retrieval.errors import UnknownPooling
from lookalike.retrieval.models.registry import (
    get_backbone,
    load_feature_extractor,
    resolve_weights,
)

PHOTOS = {
    "chelsea": data.chelsea,
    "astronaut": data.astronaut,
    "coffee": data.coffee,
    "rocket": data.rocket,
    "hubble": data.hubble_deep_field,
}
MOBILENET = get_backbone("mobilenet_v2")


def _photo(name: str) -> Image.Image:
    """A scikit-image photo resized to the model's input size."""
    return Image.fromarray(PHOTOS[name]()).resize((224, 224), Image.Resampling.BILINEAR)


def prepare_photo(name: str, *, size: int) -> Prepared:
    """Picklable `prepare`: a photo by name, a reported failure for 'missing', raises for 'boom'."""
    if name == "missing":
        return Prepared(None, {"name": name, "error": "no such photo"})
    if name == "boom":
        raise OSError("decoder exploded")
    return Prepared(image_to_pixels(_photo(name), size=size), {"name": name})


@pytest.fixture(scope="module")
def extractor(tmp_path_factory: pytest.TempPathFactory) -> torch.nn.Module:
    home = tmp_path_factory.mktemp("torch-home")
    weights = resolve_weights(MOBILENET, explicit=None, torch_home=home)
    return load_feature_extractor(MOBILENET, weights=weights)


@pytest.fixture(scope="module")
def embedder(extractor: torch.nn.Module) -> Embedder:
    return Embedder(extractor, spec=MOBILENET, options=EmbedderOptions(batch_size=4))


@pytest.fixture(scope="module")
def photos() -> list[Image.Image]:
    return [_photo(name) for name in PHOTOS]


def test_vectors_are_float32_c_contiguous_unit_norm(
    embedder: Embedder, photos: list[Image.Image]
) -> None:
    vectors = embedder.embed_images(photos)
    assert vectors.shape == (len(photos), 1280) == (len(photos), embedder.dim)
    assert vectors.dtype == np.float32
    assert vectors.flags["C_CONTIGUOUS"]
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_embedding_is_deterministic_and_independent_of_batching(
    embedder: Embedder, photos: list[Image.Image]
) -> None:
    first = embedder.embed_images(photos)
    again = embedder.embed_images(photos)
    one_by_one = np.concatenate([embedder.embed_images([photo]) for photo in photos])
    np.testing.assert_array_equal(first, again)
    np.testing.assert_allclose(first, one_by_one, atol=1e-5)


def test_the_same_image_twice_gives_identical_vectors(embedder: Embedder) -> None:
    chelsea = _photo("chelsea")
    vectors = embedder.embed_images([chelsea, chelsea.copy()])
    np.testing.assert_array_equal(vectors[0], vectors[1])


def test_a_mirrored_photo_is_closer_to_its_original_than_other_photos(
    embedder: Embedder, photos: list[Image.Image]
) -> None:
    vectors = embedder.embed_images(photos)
    for index, photo in enumerate(photos):
        mirrored = embedder.embed_images([ImageOps.mirror(photo)])[0]
        similarities = vectors @ mirrored
        assert similarities.argmax() == index
        assert similarities[index] > 0.8


def test_bf16_vectors_agree_with_fp32(
    extractor: torch.nn.Module, photos: list[Image.Image]
) -> None:
    fp32 = Embedder(extractor, spec=MOBILENET, options=EmbedderOptions(bf16=False))
    bf16 = Embedder(extractor, spec=MOBILENET, options=EmbedderOptions(bf16=True))
    cosines = np.sum(fp32.embed_images(photos) * bf16.embed_images(photos), axis=1)
    assert cosines.min() > 0.99


def test_bf16_counts_as_native_only_where_the_cpu_has_bf16_instructions() -> None:
    """oneDNN supports bfloat16 on any AVX-512 CPU, emulated where the CPU lacks AVX-512 BF16
    and AMX (half fp32's speed on an Ice Lake host): only the instructions make it native."""
    flags = Path("/proc/cpuinfo").read_text()
    has_instructions = " avx512_bf16" in flags or " amx_bf16" in flags
    assert native_bf16() == (has_instructions and torch.ops.mkldnn._is_mkldnn_bf16_supported())


def test_gem_and_mac_pooling_give_different_unit_vectors(
    extractor: torch.nn.Module, photos: list[Image.Image]
) -> None:
    gap = Embedder(extractor, spec=MOBILENET, options=EmbedderOptions(pooling="gap"))
    mac = Embedder(extractor, spec=MOBILENET, options=EmbedderOptions(pooling="mac"))
    gap_vectors, mac_vectors = gap.embed_images(photos), mac.embed_images(photos)
    np.testing.assert_allclose(np.linalg.norm(mac_vectors, axis=1), 1.0, atol=1e-5)
    assert not np.allclose(gap_vectors, mac_vectors, atol=1e-3)


def test_unknown_pooling_is_refused_when_the_embedder_is_built(
    extractor: torch.nn.Module,
) -> None:
    with pytest.raises(UnknownPooling, match="'sum'"):
        Embedder(extractor, spec=MOBILENET, options=EmbedderOptions(pooling="sum"))


def test_no_images_give_an_empty_matrix_of_the_right_width(embedder: Embedder) -> None:
    assert embedder.embed_images([]).shape == (0, 1280)


def test_embed_tensors_rejects_a_batch_without_three_channels(embedder: Embedder) -> None:
    with pytest.raises(ValueError, match=r"\(2, 1, 224, 224\)"):
        embedder.embed_tensors(torch.zeros(2, 1, 224, 224, dtype=torch.uint8))


def test_to_tensor_squashes_other_sizes_and_converts_modes(embedder: Embedder) -> None:
    wide_gray = Image.fromarray(data.camera()).resize((300, 120))
    tensor = embedder.to_tensor(wide_gray)
    assert tensor.shape == (3, 224, 224)
    assert tensor.dtype == torch.uint8
    assert torch.equal(tensor[0], tensor[1]) and torch.equal(tensor[1], tensor[2])
    assert int(tensor.max()) > int(tensor.min())


def test_an_input_size_option_overrides_the_backbones(extractor: torch.nn.Module) -> None:
    small = Embedder(extractor, spec=MOBILENET, options=EmbedderOptions(input_size=128))
    photo = Image.fromarray(data.astronaut())
    assert small.to_tensor(photo).shape == (3, 128, 128)
    default = Embedder(extractor, spec=MOBILENET, options=EmbedderOptions())
    assert not np.allclose(small.embed_images([photo]), default.embed_images([photo]))


def test_image_to_pixels_keeps_channel_values() -> None:
    image = Image.new("RGB", (4, 4), (255, 0, 51))
    tensor = image_to_pixels(image, size=4)
    assert tensor[:, 0, 0].tolist() == [255, 0, 51]


@pytest.mark.parametrize("name", ["astronaut", "coffee", "hubble"])
@pytest.mark.parametrize("side", [(100, 80), (320, 240), (449, 301), (895, 600), (896, 600),
                                  (3001, 1999), (17, 1200)])
def test_image_to_pixels_squashes_as_pillows_bilinear_does(name: str,
                                                          side: tuple[int, int]) -> None:
    """Within one level of Pillow's antialiased BILINEAR wherever torch's kernel resizes,
    and Pillow's own result once a side is four times the size (Pillow reduces first)."""
    photo = Image.fromarray(PHOTOS[name]()).convert("RGB").resize(side, Image.Resampling.BICUBIC)
    pixels = image_to_pixels(photo, size=224)
    expected = np.asarray(photo.resize((224, 224), Image.Resampling.BILINEAR, reducing_gap=2.0))
    difference = np.abs(pixels.permute(1, 2, 0).numpy().astype(int) - expected.astype(int))
    assert pixels.shape == (3, 224, 224) and pixels.dtype == torch.uint8
    assert difference.max() <= (0 if max(side) >= 896 else 1)


def test_embed_tensors_rejects_float_input(embedder: Embedder) -> None:
    with pytest.raises(ValueError, match="uint8"):
        embedder.embed_tensors(torch.zeros(2, 3, 224, 224))


def test_folded_batch_norm_gives_the_same_vectors(extractor: torch.nn.Module) -> None:
    """BN folding is a speed-up only: the vectors must not move."""
    image = image_to_pixels(_photo("chelsea"), size=224).unsqueeze(0)
    options = EmbedderOptions(bf16=False, channels_last=False)
    folded = Embedder(extractor, spec=MOBILENET, options=options).embed_tensors(image)
    shift = torch.tensor(MOBILENET.weights.mean).view(1, 3, 1, 1) * 255
    scale = torch.tensor(MOBILENET.weights.std).view(1, 3, 1, 1) * 255
    with torch.no_grad():
        plain = extractor((image.float() - shift) / scale).mean(dim=(2, 3))
    plain = torch.nn.functional.normalize(plain, dim=1).numpy()
    assert np.abs(folded - plain).max() < 1e-4


@pytest.mark.parametrize("scales", [(1.0,), (1.0, 0.7)])
def test_a_frozen_graph_gives_the_eager_vectors_at_any_batch_and_image_size(
    extractor: torch.nn.Module, photos: list[Image.Image], scales: tuple[float, ...]
) -> None:
    """Traced on calls of 2 images at 224 px, the graph must also serve 1 image and 157 px."""
    options = EmbedderOptions(bf16=False, batch_size=5, forward_batch=2, scales=scales)
    eager = Embedder(extractor, spec=MOBILENET, options=options)
    frozen = Embedder(extractor, spec=MOBILENET,
                      options=dataclasses.replace(options, frozen_graph=True))
    assert isinstance(frozen.model, torch.jit.ScriptModule)
    np.testing.assert_allclose(frozen.embed_images(photos), eager.embed_images(photos),
                               atol=1e-4)


def _run_stream(embedder: Embedder, names: list[str]) -> list[EmbeddedBatch]:
    return list(embedder.embed_stream(names, functools.partial(prepare_photo, size=224)))


@pytest.mark.parametrize(("workers", "in_workers"), [(0, False), (2, False), (2, True)])
def test_stream_keeps_order_and_survives_failing_items(
    extractor: torch.nn.Module, embedder: Embedder, workers: int, in_workers: bool
) -> None:
    names = ["rocket", "missing", "chelsea", "boom", "astronaut", "coffee", "hubble"]
    options = EmbedderOptions(batch_size=3, num_workers=workers, embed_in_workers=in_workers)
    streamer = Embedder(extractor, spec=MOBILENET, options=options)
    batches = _run_stream(streamer, names)
    assert [len(batch.payloads) for batch in batches] == [3, 3, 1]
    payloads = [payload for batch in batches for payload in batch.payloads]
    vectors = [vector for batch in batches for vector in batch.vectors]
    assert payloads[1] == {"name": "missing", "error": "no such photo"}
    assert payloads[3] == PrepareFailed(index=3, error="OSError: decoder exploded")
    assert [vector is None for vector in vectors] == [False, True, False, True] + [False] * 3
    good = [name for name in names if name in PHOTOS]
    named = [p["name"] for p in payloads if isinstance(p, dict) and "error" not in p]
    assert named == good
    expected = embedder.embed_images([_photo(name) for name in good])
    np.testing.assert_allclose(np.stack([v for v in vectors if v is not None]), expected, atol=1e-5)


class _Finalised:
    """Garbage in a reference cycle that writes the pid of whoever finalises it."""

    def __init__(self, record: Path) -> None:
        self.record, self.me = record, self

    def __del__(self) -> None:
        self.record.write_text(str(os.getpid()))


def prepare_collecting(name: str, *, size: int) -> Prepared:
    """`prepare_photo` after a full garbage collection in the worker process."""
    gc.collect()
    return prepare_photo(name, size=size)


def test_stream_workers_leave_the_parents_garbage_to_the_parent(
        extractor: torch.nn.Module, tmp_path: Path) -> None:
    """A worker that finalised the parent's garbage hung there (an OpenVINO compiled model's
    destructor waits on the parent's threads): only the parent may finalise it."""
    record = tmp_path / "finalised-by"
    streamer = Embedder(extractor, spec=MOBILENET, options=EmbedderOptions(num_workers=1))
    gc.disable()  # the cycle is still garbage when the worker forks
    try:
        _Finalised(record)
        batches = list(streamer.embed_stream(["chelsea", "rocket"],
                                             functools.partial(prepare_collecting, size=224)))
    finally:
        gc.enable()
    assert all(vector is not None for vector in batches[0].vectors)
    assert not record.exists()
    gc.collect()
    assert record.read_text() == str(os.getpid())


def test_stream_with_only_failed_items_yields_no_vectors(embedder: Embedder) -> None:
    batches = _run_stream(embedder, ["missing", "boom"])
    assert [batch.vectors for batch in batches] == [[None, None]]


def test_stream_rejects_a_tensor_of_the_wrong_size(embedder: Embedder) -> None:
    batches = list(embedder.embed_stream(["chelsea"], functools.partial(prepare_photo, size=96)))
    (payload,) = batches[0].payloads
    assert isinstance(payload, PrepareFailed)
    assert "(3, 96, 96)" in payload.error
    assert batches[0].vectors == [None]


def test_stream_of_nothing_yields_nothing(embedder: Embedder) -> None:
    assert _run_stream(embedder, []) == []


def test_workers_that_would_not_be_forked_are_refused_the_model(
        extractor: torch.nn.Module, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(embedder_module, "start_method", lambda: "spawn")
    with pytest.raises(ValueError, match="started by fork"):
        Embedder(extractor, spec=MOBILENET,
                 options=EmbedderOptions(num_workers=2, embed_in_workers=True))
