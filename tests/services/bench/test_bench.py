"""The benchmark commands run end to end and print their figures (values are not asserted):
ingest, forward, search, speed and startup on SQLite (test_bench_load.py: load, and both on
PostgreSQL, kept in one file since each checks that it leaves no database behind)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lookalike.retrieval.embedding.embedder import native_int8
from tests.services.bench.conftest import STARTUP_FIGURES, bench

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def test_bench_ingest_reports_the_three_throughputs(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOOKALIKE_TORCH_THREADS", "1")  # so its workers can run the model
    figures = bench(tmp_path / "unused", "ingest", "--images", "48", "--naive-images", "8")
    assert figures["images"] == 48
    for key in ("model_only_per_s", "end_to_end_per_s", "naive_per_s"):
        assert figures[key] > 0
    assert figures["e2e_over_model"] == pytest.approx(
        figures["end_to_end_per_s"] / figures["model_only_per_s"], rel=1e-2)
    assert figures["e2e_over_model_all_cores"] == pytest.approx(
        figures["end_to_end_per_s"] / figures["model_all_cores_per_s"], rel=1e-2)
    cpu = figures["cpu"]  # where each image's CPU went: the model's thread, workers, writer
    for key in ("model_only_ms", "calling_thread_ms", "other_threads_ms", "decode_workers_ms"):
        assert cpu[key] > 0, key
    assert 0 < cpu["cores_busy"] <= figures["machine"]["cores"] + 0.1
    assert figures["upload_p50_ms"] > 0


def test_bench_forward_reports_each_call_size(tmp_path: Path) -> None:
    figures = bench(tmp_path / "unused", "forward", "--sizes", "1,4", "--images", "8")
    assert figures["images"] == 8
    assert set(figures["images_per_s"]) == {"1", "4"}
    assert all(rate > 0 for rate in figures["images_per_s"].values())
    assert figures["chosen"] in (1, 2, 4, 8)


def test_bench_search_reports_http_and_faiss_latency(photo_catalog: Path) -> None:
    figures = bench(photo_catalog, "search", "--queries", "20")
    assert figures["queries"] == 20 and figures["vectors"] >= 15
    assert figures["http_p99_ms"] >= figures["http_p50_ms"] > figures["faiss_p50_ms"]


def test_bench_speed_reports_engines_and_search_ratios(tmp_path: Path) -> None:
    figures = bench(tmp_path / "unused", "speed", "--seconds", "0.6", "--sample-per-class", "1",
                    "--queries", "5", "--clients", "2")
    assert figures["best_engine"] in figures["engines_per_s"]
    assert "torch-fp32-eager" in figures["engines_per_s"]
    openvino = {name for name in figures["engines_per_s"] if name.startswith("openvino")}
    assert openvino and set(figures["dynamic_shape_per_s"]) == openvino
    assert set(figures["engine_cosine"]) == openvino
    assert figures["engine_cosine"]["openvino-fp32"] >= 0.999
    saturates = "openvino-int8" in openvino and not native_int8()
    assert any(note.startswith("no VNNI or AMX") for note in figures["notes"]) is saturates
    if figures["space_engine"] in openvino:  # the default: an engine that matches torch's
        assert figures["engine_cosine"][figures["space_engine"]] >= 0.999
        rates = figures["engines_per_s"]
        reference = rates.get("torchscript-bf16", rates["torchscript-fp32"])
        assert figures["space_engine_over_torchscript_bf16"] == pytest.approx(
            rates[figures["space_engine"]] / reference, abs=0.01)
    assert figures["catalog_images"] == 33 and figures["clients"] == 2
    assert figures["upload_p50_over_decode_forward"] > 0 and figures["by_id_p50_ms"] > 0
    assert 0 < figures["upload_took_p50_ms"] < figures["upload_p50_ms"]  # HTTP is the rest
    assert 0 < figures["faiss_after_forward_p50_ms"] < figures["upload_took_p50_ms"]
    best_alone = figures["best_engine_beside_clients_per_s"]  # timed between the clients
    assert best_alone > 0 and figures["upload_many_over_best_engine"] == pytest.approx(
        figures["upload_many_per_s"] / best_alone, abs=0.01)
    assert figures["upload_many_server_cpu_ms"] > 0
    shares = figures["upload_many_busiest_share"]
    assert len(shares) == 4 and all(0 <= share <= 1 for share in shares)
    assert sum(figures["upload_many_block_per_s"]) / 4 == pytest.approx(
        figures["upload_many_per_s"], abs=0.2)
    assert set(figures["draft_cosine"]) == {"12mp", "800x600"}
    assert figures["machine"]["cores"] >= 1


def test_bench_startup_times_a_fresh_process_with_and_without_a_snapshot(tmp_path: Path) -> None:
    figures = bench(tmp_path / "unused", "startup", "--vectors", "2000", "--dim", "64",
                    "--changes", "100")
    assert (figures["vectors"], figures["dim"], figures["changes_after_snapshot"]) == (
        2000, 64, 100)
    assert figures["database"] == "sqlite"
    for key in (*STARTUP_FIGURES, "server_snapshot_first_search_s",
                "server_rebuild_first_search_s"):
        assert figures[key] > 0, key
