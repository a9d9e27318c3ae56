"""Region descriptors that append an earlier block of the trunk (TrunkTap, tap_layer), with
real MobileNetV2 weights on real photos from scikit-image."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from skimage import data
from torch import nn

from lookalike.retrieval.embedding.embedder import Embedder, EmbedderOptions
from lookalike.retrieval.embedding.regions import (
    TrunkTap,
    cell_agreement,
    describe_crops,
    tap_layer,
    tapped_cells,
)
from lookalike.retrieval.models.registry import (
    get_backbone,
    load_feature_extractor,
    resolve_weights,
)

MOBILENET = get_backbone("mobilenet_v2")


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    return resolve_weights(MOBILENET, explicit=None, torch_home=tmp_path_factory.mktemp("th"))


@pytest.fixture(scope="module")
def embedder(weights) -> Embedder:  # type: ignore[no-untyped-def]
    return Embedder(load_feature_extractor(MOBILENET, weights=weights), spec=MOBILENET,
                    options=EmbedderOptions(batch_size=4))


@pytest.fixture(scope="module")
def tap(weights) -> TrunkTap:  # type: ignore[no-untyped-def]
    return TrunkTap(load_feature_extractor(MOBILENET, weights=weights), layer=13, side=224)


def test_the_tapped_block_is_the_last_before_the_final_downsampling() -> None:
    mobilenet = MOBILENET.trunk(MOBILENET.builder())
    assert tap_layer(mobilenet, side=224) == 13  # 96 channels at 14x14, then stride 2
    resnet = get_backbone("resnet18")
    assert tap_layer(resnet.trunk(resnet.builder()), side=224) == 6  # layer3
    with pytest.raises(ValueError, match="sequence of blocks"):
        tap_layer(nn.Conv2d(3, 8, 3), side=32)
    with pytest.raises(ValueError, match="cannot tap block 18"):
        TrunkTap(mobilenet, layer=18, side=224)  # the last block: nothing after it


def test_a_tapped_crop_keeps_the_last_map_and_appends_the_block(
        embedder: Embedder, tap: TrunkTap) -> None:
    crops = [Image.fromarray(data.chelsea()), Image.fromarray(data.coffee()).crop((0, 0, 90, 140))]
    plain = describe_crops(embedder, crops, centre=0.1)
    tapped = describe_crops(embedder, crops, centre=0.1, tap=tap)
    assert tap.channels == 96
    assert tapped.shape == (2, embedder.dim + 96) and tapped.dtype == np.float32
    assert np.allclose(np.linalg.norm(tapped, axis=1), 1.0, atol=1e-5)
    # both parts are unit vectors before the join, so the last map's part is the untapped
    # vector over sqrt(2)
    assert np.allclose(tapped[:, :embedder.dim] * np.sqrt(2), plain, atol=1e-3)
    assert describe_crops(embedder, [], tap=tap).shape == (0, embedder.dim + 96)



def test_cells_agree_fully_with_themselves_and_less_with_another_crop(
        embedder: Embedder, tap: TrunkTap) -> None:
    cat = Image.fromarray(data.chelsea())
    crops = [cat, cat.crop((100, 20, 400, 280)), Image.fromarray(data.coffee())]
    cells = tapped_cells(embedder, tap, crops)
    assert cells.shape == (3, 96, 14, 14)
    for centre in (0.1, None):
        agreement = cell_agreement(cells[:1], cells, centre=centre)
        assert agreement.shape == (3,) and agreement[0] == pytest.approx(1.0, abs=1e-5)
        assert 1.0 > agreement[1] > agreement[2]  # its own face, then another photo
    with pytest.raises(ValueError, match="same C,h,w"):
        cell_agreement(cells[:2], cells, centre=0.1)


def test_a_shifted_box_agrees_again_when_the_cells_may_move(
        embedder: Embedder, tap: TrunkTap) -> None:
    cat = Image.fromarray(data.chelsea())  # 451 x 300
    box = (120, 40, 360, 280)
    moved = (144, 40, 384, 280)  # the same box a tenth of its side to the right
    cells = tapped_cells(embedder, tap, [cat.crop(box), cat.crop(moved),
                                         Image.fromarray(data.coffee()).crop((0, 0, 240, 240))])
    still = cell_agreement(cells[:1], cells, centre=0.1)
    tolerant = cell_agreement(cells[:1], cells, centre=0.1, shift=1)
    assert tolerant[0] == pytest.approx(1.0, abs=1e-5)  # itself, unmoved, is still best
    assert np.all(tolerant >= still - 1e-6)  # a move is only ever an extra chance
    assert tolerant[1] - still[1] > 0.3  # the moved box: its object a cell or more over
    assert tolerant[1] > tolerant[2] + 0.2  # and still far above another photo
    with pytest.raises(ValueError, match="shift must be 0 to 13"):
        cell_agreement(cells[:1], cells, centre=0.1, shift=14)
