"""The DISC21 reader on a small folder written in its layout."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from lookalike.retrieval.errors import GroundTruthMalformed, GroundTruthNotFound
from lookalike.retrieval.evaluation.disc21 import load_disc21, read_disc21_pairs


def write_folder(root: Path, truth: str) -> Path:
    for sub, names in (("queries", ["Q00000", "Q00001", "Q00002"]),
                       ("references", ["R000000", "R000001"])):
        (root / sub).mkdir(parents=True)
        for name in names:
            Image.new("RGB", (8, 8)).save(root / sub / f"{name}.jpg")
    (root / "dev_ground_truth.csv").write_text(truth, encoding="utf-8")
    return root


def test_pairs_rows_and_distractor_queries(tmp_path: Path) -> None:
    root = write_folder(tmp_path, "query_id,reference_id\nQ00000,R000001\nQ00001,\n"
                        "Q00002,R000000\n")
    data = load_disc21(root)
    assert [p.name for p in data.queries] == ["Q00000.jpg", "Q00001.jpg", "Q00002.jpg"]
    assert [p.name for p in data.references] == ["R000000.jpg", "R000001.jpg"]
    assert data.truth == (1, -1, 0)
    assert load_disc21(root, limit=1).truth == (1,)


def test_bad_files_say_what_is_wrong(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "a", "query,reference\nQ00000,R000001\n")
    with pytest.raises(GroundTruthMalformed, match="query_id,reference_id"):
        load_disc21(root)
    root = write_folder(tmp_path / "b", "query_id,reference_id\nQ00000,R000009\n")
    with pytest.raises(GroundTruthNotFound, match="R000009"):
        load_disc21(root)
    with pytest.raises(GroundTruthNotFound, match="no DISC21"):
        read_disc21_pairs(tmp_path / "none.csv")
    twice = tmp_path / "twice.csv"
    twice.write_text("query_id,reference_id\nQ1,R1\nQ1,R2\n", encoding="utf-8")
    with pytest.raises(GroundTruthMalformed, match="twice"):
        read_disc21_pairs(twice)
