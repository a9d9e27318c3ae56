"""The textbook's networks in the registry: ZFNet, NiN, GoogLeNet and the small-input variants
have the declared shapes, learn (gradients reach every layer, the loss falls), and say where
their weights come from."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision

from lookalike.retrieval.models.registry import get_backbone, load_model
from lookalike.retrieval.training.budget import Budget, train_on_budget
from lookalike.retrieval.training.network import build_network
from lookalike.services.evaluation.benchmarks import fashion_pixels

# name -> (input size, descriptor map side)
NEW = {"zfnet": (224, 5), "nin": (224, 5), "googlenet": (224, 7)}
SMALL_MAPS = {"alexnet_small": 3, "zfnet_small": 3, "nin_small": 3, "vgg16_small": 2,
              "googlenet_small": 2, "resnet18_small": 4, "resnet50_small": 4,
              "mobilenet_v2_small": 2, "efficientnet_lite0_small": 2}


@pytest.mark.parametrize("name", sorted(NEW))
def test_new_network_shapes_and_gradients_at_its_input_size(name: str) -> None:
    spec = get_backbone(name)
    size, side = NEW[name]
    assert spec.weights.input_size == size
    torch.manual_seed(0)
    model = spec.builder().train()
    trunk = spec.trunk(model)
    images = torch.randn(2, 3, size, size)
    assert trunk(images).shape == (2, spec.dim, side, side)
    logits = model(images)
    assert logits.shape == (2, 1000)
    logits.logsumexp(dim=1).mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in trunk.parameters())


@pytest.mark.parametrize("name", sorted(SMALL_MAPS))
def test_small_variant_keeps_a_map_at_32_px(name: str) -> None:
    spec = get_backbone(name)
    assert spec.weights.input_size == 32 and not spec.weights.pretrained
    model = load_model(spec, weights=None)
    with torch.inference_mode():
        maps = spec.trunk(model)(torch.randn(1, 3, 32, 32))
        assert model(torch.randn(1, 3, 32, 32)).shape == (1, 1000)
    side = SMALL_MAPS[name]
    assert maps.shape == (1, spec.dim, side, side)


def test_the_imagenet_layout_leaves_nothing_of_a_32_px_image() -> None:
    with pytest.raises(RuntimeError):
        get_backbone("zfnet").builder()(torch.randn(1, 3, 32, 32))


# resnet50 and efficientnet_lite0 share the stem changes of resnet18 and mobilenet_v2 and
# are the slowest: their falling loss is left to those two.
@pytest.mark.parametrize("name", sorted(set(SMALL_MAPS) - {"resnet50_small",
                                                            "efficientnet_lite0_small"}))
def test_small_variant_trains_from_scratch_with_falling_loss(
    name: str, fashion_batch: tuple[torch.Tensor, torch.Tensor]
) -> None:
    pixels, labels = fashion_batch
    torch.manual_seed(0)
    net, _ = build_network(get_backbone(name), weights=None, pooling="gap", classes=10)
    run = train_on_budget(net, lambda rows: (pixels[rows], labels[rows]), count=len(labels),
                          budget=Budget(epochs=3, batch_size=len(labels), lr=5e-4))
    assert run.steps == 3
    assert run.losses[-1] < run.losses[0], run.losses


def test_registry_says_where_pretrained_weights_exist() -> None:
    for name in ("zfnet", "nin", *SMALL_MAPS):
        assert not get_backbone(name).weights.pretrained
    for name in ("alexnet", "googlenet", "mobilenet_v2", "resnet18", "resnet50", "vgg16"):
        weights = get_backbone(name).weights
        assert weights.pretrained and weights.torchvision is not None
        url = torchvision.models.get_weight(weights.torchvision).url
        assert url.rsplit("/", 1)[1] == weights.filename  # where fetch puts the download
    assert get_backbone("efficientnet_lite0").weights.torchvision is None


def test_googlenet_loads_torchvision_layout_weights_without_the_auxiliary_heads(
    tmp_path: Path,
) -> None:
    torch.manual_seed(0)
    original = torchvision.models.googlenet(weights=None, aux_logits=True, init_weights=False)
    torch.save(original.state_dict(), tmp_path / "googlenet.pth")
    loaded = load_model(get_backbone("googlenet"), weights=tmp_path / "googlenet.pth")
    assert loaded.aux1 is None
    assert torch.equal(loaded.inception5b.branch1.conv.weight,
                       original.inception5b.branch1.conv.weight)


@pytest.fixture(scope="module")
def fashion_batch() -> tuple[torch.Tensor, torch.Tensor]:
    """Six real Fashion-MNIST images at 32 px and their labels."""
    from lookalike.services.sample import fashion_mnist

    images, labels = fashion_mnist(split="train", limit=6)
    return fashion_pixels(images, 32), torch.from_numpy(labels)
