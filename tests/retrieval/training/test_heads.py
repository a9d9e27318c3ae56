"""Projection heads: shapes, unit norms, and strict loading with clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lookalike.retrieval.errors import HeadNotFound, WeightsMismatch
from lookalike.retrieval.training.heads import ProjectionHead, load_head


@pytest.mark.parametrize("hidden", [None, 32])
def test_head_maps_to_unit_vectors_of_out_dim(hidden: int | None) -> None:
    head = ProjectionHead(64, 16, hidden=hidden)
    out = head(torch.randn(5, 64))
    assert out.shape == (5, 16)
    assert torch.allclose(out.norm(dim=1), torch.ones(5), atol=1e-6)


def test_linear_and_hidden_heads_have_the_expected_layers() -> None:
    assert sum(p.numel() for p in ProjectionHead(64, 16).parameters()) == 64 * 16 + 16
    hidden = ProjectionHead(64, 16, hidden=32)
    assert sum(p.numel() for p in hidden.parameters()) == 64 * 32 + 32 + 32 * 16 + 16


def test_a_saved_head_loads_back_with_the_same_outputs(tmp_path: Path) -> None:
    head = ProjectionHead(64, 16, hidden=32)
    torch.save(head.state_dict(), tmp_path / "head.pt")
    loaded = load_head(tmp_path / "head.pt", in_dim=64, out_dim=16, hidden=32)
    vectors = torch.randn(3, 64)
    assert torch.equal(loaded(vectors), head.eval()(vectors))
    assert not loaded.training


def test_a_head_of_another_shape_is_refused_by_name(tmp_path: Path) -> None:
    torch.save(ProjectionHead(64, 16).state_dict(), tmp_path / "head.pt")
    with pytest.raises(WeightsMismatch, match=r"head.pt does not fit a head with in_dim=64, "
                       r"out_dim=8, hidden=None"):
        load_head(tmp_path / "head.pt", in_dim=64, out_dim=8, hidden=None)
    with pytest.raises(WeightsMismatch, match="hidden=32"):
        load_head(tmp_path / "head.pt", in_dim=64, out_dim=16, hidden=32)


def test_missing_and_unreadable_head_files_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(HeadNotFound, match="nowhere.pt does not exist"):
        load_head(tmp_path / "nowhere.pt", in_dim=4, out_dim=2, hidden=None)
    (tmp_path / "junk.pt").write_bytes(b"not a state dict")
    with pytest.raises(WeightsMismatch, match="not a readable state dict"):
        load_head(tmp_path / "junk.pt", in_dim=4, out_dim=2, hidden=None)
