"""Snapshots: atomic files, checksums, falling back past broken ones, pruning."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
from pathlib import Path

import numpy as np
import pytest

from lookalike.retrieval.index import snapshot
from lookalike.retrieval.index.faiss_index import VectorIndex
from lookalike.retrieval.index.persistence import load_latest_snapshot, save_snapshot
from lookalike.retrieval.index.snapshot import list_snapshots, prune_snapshots

DIM = 16


def unit(n: int, seed: int) -> np.ndarray:
    rows = np.random.default_rng(seed).standard_normal((n, DIM))
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def small_index(factory: str = "Flat", n: int = 300, seed: int = 0) -> VectorIndex:
    index = VectorIndex(DIM, factory=factory)
    vectors = unit(n, seed)
    index.train(vectors)
    index.add(np.arange(n, dtype=np.int64) * 3 + 1, vectors)
    return index


def snapshot_files(directory: Path) -> list[str]:
    return sorted(path.name for path in directory.iterdir())


@pytest.mark.parametrize(
    ("factory", "params"),
    [("Flat", None), ("HNSW16", {"efSearch": 32}), ("IVF8,Flat", {"nprobe": 8}),
     ("IVF8,PQ8x4fs,RFlat", {"nprobe": 8, "k_factor": 4})],
)
def test_saved_index_loads_with_identical_results_and_removals(tmp_path, factory, params) -> None:
    index = small_index(factory)
    index.remove(np.array([1, 4, 7]))
    index.add(np.array([10]), unit(1, seed=9))
    manifest = save_snapshot(index, tmp_path, watermark=42, extra={"space": "demo"})
    loaded, loaded_manifest = load_latest_snapshot(tmp_path)
    assert loaded_manifest == manifest
    assert (loaded.factory, loaded.dim, loaded.ntotal) == (factory, DIM, 297)
    assert np.array_equal(loaded.ids(), index.ids())
    queries = unit(20, seed=5)
    before, after = (
        index.search(queries, 10, params=params),
        loaded.search(queries, 10, params=params),
    )
    assert np.array_equal(before.ids, after.ids)
    np.testing.assert_array_equal(before.scores, after.scores)
    assert not np.isin(after.ids, [1, 4, 7]).any()
    loaded.add(np.array([4]), unit(1, seed=11))
    assert loaded.contains(4) and loaded.ntotal == 298


def test_manifest_names_and_checksums_the_index_file(tmp_path) -> None:
    index = small_index()
    manifest = save_snapshot(index, tmp_path, watermark=42, extra={"space": "demo"})
    assert re.fullmatch(r"snapshot-000000000042-\d{13}\.faiss", manifest.file)
    data = (tmp_path / manifest.file).read_bytes()
    assert manifest.sha256 == hashlib.sha256(data).hexdigest() and manifest.size == len(data)
    assert (manifest.factory, manifest.dim, manifest.ntotal) == ("Flat", DIM, 300)
    assert manifest.extra == {"space": "demo"}
    on_disk = json.loads((tmp_path / manifest.file.replace(".faiss", ".json")).read_text())
    assert on_disk["sha256"] == manifest.sha256 and on_disk["watermark"] == 42
    assert snapshot_files(tmp_path) == sorted([manifest.file, manifest.file[:-6] + ".json"])


def test_highest_watermark_wins_over_newest_time(tmp_path) -> None:
    save_snapshot(small_index(n=10), tmp_path, watermark=10)
    save_snapshot(small_index(n=5), tmp_path, watermark=5)
    index, manifest = load_latest_snapshot(tmp_path)
    assert manifest.watermark == 10 and index.ntotal == 10
    assert [m.watermark for m in list_snapshots(tmp_path)] == [10, 5]


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("damage", "reason"),
    [(_truncate, "size"), (_flip_byte, "sha256"), (Path.unlink, "unreadable")],
)
def test_broken_newest_snapshot_falls_back_to_the_previous_one(
    tmp_path, caplog, damage, reason
) -> None:
    save_snapshot(small_index(n=20), tmp_path, watermark=1)
    newest = save_snapshot(small_index(n=30), tmp_path, watermark=2)
    damage(tmp_path / newest.file)
    with caplog.at_level(logging.WARNING, logger="lookalike.retrieval"):
        index, manifest = load_latest_snapshot(tmp_path)
    assert manifest.watermark == 1 and index.ntotal == 20
    assert any(newest.file in r.message and reason in r.message for r in caplog.records)


def test_no_valid_snapshot_gives_none(tmp_path, caplog) -> None:
    assert load_latest_snapshot(tmp_path / "missing") is None
    assert load_latest_snapshot(tmp_path) is None
    only = save_snapshot(small_index(n=5), tmp_path, watermark=3)
    _flip_byte(tmp_path / only.file)
    (tmp_path / "snapshot-000000000009-1700000000000.json").write_text("{not json")
    with caplog.at_level(logging.WARNING, logger="lookalike.retrieval"):
        assert load_latest_snapshot(tmp_path) is None
    assert any("unreadable" in r.message for r in caplog.records)


def test_leftover_temp_files_are_ignored_and_pruned_once_stale(tmp_path) -> None:
    good = save_snapshot(small_index(n=8), tmp_path, watermark=4)
    leftovers = [
        tmp_path / ".snapshot-000000000009-1700000000000.faiss.k2j4.tmp",
        tmp_path / ".snapshot-000000000009-1700000000000.json.x8a1.tmp",
    ]
    leftovers[0].write_bytes(b"\x00" * 100)
    leftovers[1].write_text('{"file": "snapshot-000000000009-1700000000000.faiss"')
    assert load_latest_snapshot(tmp_path)[1] == good
    assert prune_snapshots(tmp_path) == []
    stale = time.time() - 3600
    for path in leftovers:
        os.utime(path, (stale, stale))
    assert sorted(prune_snapshots(tmp_path)) == sorted(leftovers)
    assert snapshot_files(tmp_path) == sorted([good.file, good.file[:-6] + ".json"])


def test_prune_keeps_the_newest_valid_snapshots(tmp_path) -> None:
    manifests = [save_snapshot(small_index(n=4 + w), tmp_path, watermark=w) for w in range(5)]
    _flip_byte(tmp_path / manifests[4].file)
    removed = prune_snapshots(tmp_path, keep=2)
    assert [m.watermark for m in list_snapshots(tmp_path)] == [3, 2]
    assert len(removed) == 6 and not any(p.exists() for p in removed)
    assert load_latest_snapshot(tmp_path)[1] == manifests[3]
    with pytest.raises(ValueError, match="keep must be >= 1"):
        prune_snapshots(tmp_path, keep=0)


def test_orphan_index_file_without_manifest_is_pruned_once_stale(tmp_path) -> None:
    kept = save_snapshot(small_index(n=4), tmp_path, watermark=1)
    orphan = save_snapshot(small_index(n=4), tmp_path, watermark=2)
    (tmp_path / orphan.file.replace(".faiss", ".json")).unlink()
    assert load_latest_snapshot(tmp_path)[1] == kept
    assert prune_snapshots(tmp_path) == []
    os.utime(tmp_path / orphan.file, (time.time() - 3600,) * 2)
    assert prune_snapshots(tmp_path) == [tmp_path / orphan.file]


def test_unserialisable_extra_writes_nothing(tmp_path) -> None:
    with pytest.raises(TypeError):
        save_snapshot(small_index(n=4), tmp_path, watermark=1, extra={"when": object()})
    assert not tmp_path.exists() or snapshot_files(tmp_path) == []


def test_manifest_pointing_at_another_file_is_skipped(tmp_path, caplog) -> None:
    good = save_snapshot(small_index(n=6), tmp_path, watermark=1)
    forged = json.loads((tmp_path / good.file.replace(".faiss", ".json")).read_text())
    forged["watermark"] = 99
    (tmp_path / "snapshot-000000000099-1700000000000.json").write_text(json.dumps(forged))
    with caplog.at_level(logging.WARNING, logger="lookalike.retrieval"):
        assert load_latest_snapshot(tmp_path)[1] == good
    assert any("expected format 1" in r.message for r in caplog.records)


@pytest.mark.slow
def test_large_flat_snapshot_loads_whole(tmp_path) -> None:
    """A 400 MB snapshot round-trips completely (its load time is a benchmark's business)."""
    dim, n = 512, 200_000
    rows = np.random.default_rng(0).standard_normal((n, dim), dtype=np.float32)
    index = VectorIndex(dim)
    index.add(np.arange(n), rows / np.linalg.norm(rows, axis=1, keepdims=True))
    save_snapshot(index, tmp_path, watermark=1)
    loaded, manifest = load_latest_snapshot(tmp_path)
    assert loaded.ntotal == manifest.ntotal == n
    probe = rows[123:124] / np.linalg.norm(rows[123])
    assert loaded.search(probe, 1).ids[0, 0] == 123


def test_each_chunk_is_checksummed_and_a_damaged_one_is_named(tmp_path, monkeypatch) -> None:
    """Chunks are checked in parallel on load; every byte is covered by exactly one digest."""
    monkeypatch.setattr(snapshot, "CHECK_CHUNK", 1000)
    manifest = save_snapshot(small_index(n=300), tmp_path, watermark=1)
    data = (tmp_path / manifest.file).read_bytes()
    assert manifest.chunk_sha256 == [hashlib.sha256(data[i:i + 1000]).hexdigest()
                                     for i in range(0, len(data), 1000)]
    assert snapshot.file_problem(tmp_path, manifest) is None
    damaged = bytearray(data)
    damaged[2500] ^= 0x01
    (tmp_path / manifest.file).write_bytes(bytes(damaged))
    assert snapshot.file_problem(tmp_path, manifest).startswith("chunk 2 has sha256")


def test_a_manifest_without_chunk_digests_is_checked_whole(tmp_path) -> None:
    manifest = save_snapshot(small_index(n=30), tmp_path, watermark=1)
    path = tmp_path / manifest.file.replace(".faiss", ".json")
    raw = json.loads(path.read_text())
    del raw["chunk_size"], raw["chunk_sha256"]
    path.write_text(json.dumps(raw))
    index, loaded = load_latest_snapshot(tmp_path)
    assert loaded.chunk_sha256 == [] and index.ntotal == 30
    _flip_byte(tmp_path / manifest.file)
    assert "sha256" in snapshot.file_problem(tmp_path, loaded)
