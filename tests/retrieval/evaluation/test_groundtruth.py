"""Revisited Oxford/Paris and INRIA Holidays readers on tiny benchmarks written to tmp_path."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from lookalike.retrieval.errors import GroundTruthMalformed, GroundTruthNotFound, UnknownProtocol
from lookalike.retrieval.evaluation.groundtruth import (
    load_holidays,
    load_revisited,
    revisited_protocol,
)
from tests.imagefactory import jpeg_bytes

GALLERY = ["all_souls_000001", "all_souls_000002", "ashmolean_000003", "balliol_000004"]
QUERIES = ["all_souls_000013", "ashmolean_000058"]


def revisited_dict() -> dict:
    """A gnd pickle's content in the published layout (numpy index arrays, float boxes)."""
    return {
        "imlist": list(GALLERY),
        "qimlist": list(QUERIES),
        "gnd": [
            {
                "easy": np.array([0]),
                "hard": np.array([1]),
                "junk": np.array([3]),
                "bbx": [10.0, 20.0, 110.0, 220.5],
            },
            {"easy": [2], "hard": [], "junk": [0, 1], "bbx": [0, 0, 50, 50]},
        ],
    }


def write_revisited(folder: Path, content: object, images: list[str] | None = None) -> Path:
    """gnd_roxford5k.pkl plus one real JPEG per image name under folder/jpg."""
    (folder / "jpg").mkdir(parents=True, exist_ok=True)
    photo = jpeg_bytes("astronaut", size=(32, 32))
    for name in GALLERY + QUERIES if images is None else images:
        (folder / "jpg" / f"{name}.jpg").write_bytes(photo)
    path = folder / "gnd_roxford5k.pkl"
    path.write_bytes(pickle.dumps(content))
    return path


def test_load_revisited_reads_names_boxes_and_labels(tmp_path: Path) -> None:
    write_revisited(tmp_path, revisited_dict())
    truth = load_revisited(tmp_path)
    assert truth.gallery == tuple(GALLERY)
    assert [q.name for q in truth.queries] == QUERIES
    first = truth.queries[0]
    assert first.bbox == (10.0, 20.0, 110.0, 220.5)
    assert (first.easy, first.hard, first.junk) == ({0}, {1}, {3})
    assert truth.gallery_paths()[2] == tmp_path / "jpg" / "ashmolean_000003.jpg"
    assert all(p.is_file() for p in truth.query_paths())


def test_load_revisited_accepts_the_pickle_path(tmp_path: Path) -> None:
    path = write_revisited(tmp_path, revisited_dict())
    assert load_revisited(path).gallery == tuple(GALLERY)


@pytest.mark.parametrize(
    ("protocol", "relevant", "junk"),
    [
        ("easy", [{0}, {2}], [{1, 3}, {0, 1}]),
        ("Medium", [{0, 1}, {2}], [{3}, {0, 1}]),
        ("hard", [{1}, set()], [{0, 3}, {0, 1, 2}]),
    ],
)
def test_revisited_protocols(tmp_path: Path, protocol: str, relevant: list, junk: list) -> None:
    write_revisited(tmp_path, revisited_dict())
    assert revisited_protocol(load_revisited(tmp_path), protocol) == (relevant, junk)


def test_unknown_protocol_lists_the_allowed_ones(tmp_path: Path) -> None:
    write_revisited(tmp_path, revisited_dict())
    with pytest.raises(UnknownProtocol, match="'extreme'; allowed: easy, medium, hard"):
        revisited_protocol(load_revisited(tmp_path), "extreme")


def test_missing_pickle_and_missing_images_are_named(tmp_path: Path) -> None:
    with pytest.raises(GroundTruthNotFound, match=r"exactly one gnd_\*\.pkl .* found none"):
        load_revisited(tmp_path)
    with pytest.raises(GroundTruthNotFound, match="no such ground-truth file"):
        load_revisited(tmp_path / "nowhere")
    write_revisited(tmp_path, revisited_dict(), images=GALLERY[:2])
    with pytest.raises(GroundTruthNotFound, match="4 benchmark images are missing"):
        load_revisited(tmp_path)
    assert len(load_revisited(tmp_path, check_images=False).gallery) == 4


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.pop("imlist"), "'imlist' must be a list of image names"),
        (lambda d: d["gnd"].pop(), r"'gnd' must be a list with one dict per query \(2 queries\)"),
        (lambda d: d["gnd"][1].pop("hard"), r"gnd\[1\] must be a dict with 'easy', 'hard'"),
        (
            lambda d: d["gnd"][0].update(junk=[9]),
            r"gnd\[0\]\['junk'\] holds index 9; allowed: 0..3",
        ),
        (lambda d: d["gnd"][1].update(bbx=[1, 2]), r"gnd\[1\]\['bbx'\] must be 4 numbers"),
    ],
)
def test_malformed_revisited_pickles_are_explained(tmp_path: Path, change, message: str) -> None:
    content = revisited_dict()
    change(content)
    path = write_revisited(tmp_path, content)
    with pytest.raises(GroundTruthMalformed, match=message) as caught:
        load_revisited(tmp_path)
    assert str(path) in str(caught.value)


class TouchesAFile:
    """Unpickling this with the plain pickle module creates `marker`: code run from data."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (Path.touch, (self.marker,))


def test_a_pickle_that_would_run_code_is_refused(tmp_path: Path) -> None:
    path = write_revisited(tmp_path, revisited_dict())
    marker = tmp_path / "touched"
    path.write_bytes(pickle.dumps({"imlist": TouchesAFile(marker)}))
    with pytest.raises(GroundTruthMalformed, match="global 'pathlib.*' is not allowed"):
        load_revisited(path)
    assert not marker.exists()
    path.write_bytes(b"not a pickle at all")
    with pytest.raises(GroundTruthMalformed, match=str(path.name)):
        load_revisited(path)


def write_holidays(folder: Path, names: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    photo = jpeg_bytes("astronaut", size=(32, 32))
    for name in names:
        (folder / name).write_bytes(photo)


def test_load_holidays_groups_by_name(tmp_path: Path) -> None:
    write_holidays(
        tmp_path / "jpg", ["100000.jpg", "100001.jpg", "100002.jpg", "100100.jpg", "100101.jpg"]
    )
    truth = load_holidays(tmp_path)
    assert truth.folder == tmp_path / "jpg"
    assert truth.gallery == ("100000.jpg", "100001.jpg", "100002.jpg", "100100.jpg", "100101.jpg")
    assert truth.queries == (0, 3)
    assert truth.relevant == ({1, 2}, {4})
    assert truth.junk() == [{0}, {3}]
    assert truth.gallery_paths()[4].read_bytes()[:2] == b"\xff\xd8"


def test_load_holidays_errors(tmp_path: Path) -> None:
    with pytest.raises(GroundTruthNotFound, match="no such Holidays folder"):
        load_holidays(tmp_path / "absent")
    with pytest.raises(GroundTruthNotFound, match=r"no \.jpg images"):
        load_holidays(tmp_path)
    write_holidays(tmp_path, ["100000.jpg", "holiday.jpg"])
    with pytest.raises(GroundTruthMalformed, match="holiday.jpg: Holidays image names must be 6"):
        load_holidays(tmp_path)
