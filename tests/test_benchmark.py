"""Benchmarks print figures (speed targets are checked by reading them, not by timed tests)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from casnet.bench.speed import benchmark_measure, benchmark_pipeline, format_pipeline_report


def test_measure_benchmark_report_is_complete():
    r = benchmark_measure(3, use_statmorph=True, statmorph_n=2)
    assert r["casnet_ms"] > 0
    if r.get("statmorph") != "not installed":
        # the ratio compares the two codes on the same stamps
        assert r["statmorph_ms"] > 0 and r["ratio"] == pytest.approx(
            r["statmorph_ms"] / r["casnet_ms_same"]
        )
    assert r["machine"]["cores"] >= 1


@pytest.mark.slow
def test_pipeline_benchmark_reports_throughput_and_memory(tmp_path):
    # in-process runs (workers=0) keep this fast; the Dask paths are tested in test_parallel
    r = benchmark_pipeline(4, workers=(0,), n_small=2, chunk_size=2, workdir=str(tmp_path))
    for stage in ("simulate", "clean", "measure"):
        rates = r[f"{stage}_galaxies_per_s"]
        assert set(rates) == {0} and all(v > 0 for v in rates.values())
        assert math.isfinite(r[f"{stage}_speedup"])
        for key in ("driver_rss_mb", "worker_rss_mb"):
            assert math.isfinite(r[f"{stage}_memory_growth"][key])
    text = format_pipeline_report(r)
    assert "speed-up" in text and "measure" in text


@pytest.mark.slow
def test_benchmark_predict_in_process_and_rest(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from casnet.cli import app

    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["benchmark", "predict", "--n", "24", "--rest-batch", "10"])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "benchmarks" / "predict.json").read_text())
    for key in ("in_process_galaxies_per_s", "rest_galaxies_per_s", "matmul_gflops",
                "concentration_gflops", "asymmetry_gflops"):  # fmt: skip
        assert report[key] > 0, key
    assert "through mlflow models serve" in result.output and "% of the matmul" in result.output


def test_synthetic_stamps_are_centred_sources():
    from casnet.bench.speed import synthetic_stamps

    stamps = synthetic_stamps(3, size=61)
    assert stamps.shape == (3, 61, 61) and stamps.dtype == np.float32
    for s in stamps:  # the brightest pixel is within a few pixels of the centre
        y, x = np.unravel_index(np.argmax(s), s.shape)
        assert abs(y - 30) <= 5 and abs(x - 30) <= 5


def test_benchmark_all_writes_the_table_json_and_mlflow_run(tmp_path, monkeypatch):
    from mlflow import MlflowClient
    from typer.testing import CliRunner

    from casnet.cli import app

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CASNET_ROOT", str(tmp_path))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    args = ["benchmark", "all", "--n", "6", "--repeats", "1", "--cnn-n", "32", "--train-n", "16",
            "--no-pipeline"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "benchmarks" / "results.json").read_text())
    assert report["cnn_ms"] > 0 and report["conventional_ms"] > 0
    assert report["cnn_vs_conventional"] == pytest.approx(
        report["conventional_ms"] / report["cnn_ms"]
    )
    assert 0 < report["asymmetry_matmul_fraction"] < 5
    assert set(report["training"]) == {"concentration", "asymmetry"}
    goals = report["goals"]
    assert goals["CNN C+A >= 60x faster than statmorph (as run)"]["threshold"] == 60.0
    assert goals["simulate >= 1.7x with 2 workers (cold)"]["met"] is None  # not run here
    assert "| casnet CNN C+A (combined model) |" in result.output and "| goal |" in result.output
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    exp = client.get_experiment_by_name("casnet-benchmark")
    (run,) = client.search_runs([exp.experiment_id])
    assert run.data.metrics["cnn_ms"] == pytest.approx(report["cnn_ms"])
    assert run.data.tags["casnet.cores"] == str(report["machine"]["cores"])


def test_harness_table_shows_cold_and_running_cluster_speedups(tmp_path):
    from casnet.bench.harness import format_report

    pipe = {"n": 100, "workers": [1, 2], "warm": True}
    for k, s in enumerate(("simulate", "clean", "measure")):
        pipe[f"{s}_galaxies_per_s"] = {1: 10.0 + k, 2: 15.0 + k}
        pipe[f"{s}_speedup"] = (15.0 + k) / (10.0 + k)
        pipe[f"{s}_warm_galaxies_per_s"] = {1: 20.0, 2: 39.0}
        pipe[f"{s}_warm_speedup"] = 1.95
        pipe[f"{s}_memory_growth"] = {"driver_rss_mb": 0.05, "worker_rss_mb": -0.01}
    report = {
        "machine": {"cpu": "test", "cores": 2, "gpus": []}, "n": 4, "cnn_n": 8, "batch_size": 8,
        "repeats": 1, "conventional_ms": 5.0, "cnn_ms": 4.0, "peak_rss_after_measure_mb": 1.0,
        "peak_rss_after_cnn_mb": 2.0, "concentration_gflops": 1.0, "asymmetry_gflops": 1.0,
        "concentration_matmul_fraction": 0.5, "asymmetry_matmul_fraction": 0.5,
        "matmul_gflops": 2.0, "training": {}, "pipeline": pipe, "goals": {},
        "statmorph_ms": 100.0,
    }  # fmt: skip
    lines = format_report(report).splitlines()
    (sm,) = [line for line in lines if line.startswith("| statmorph, as run |")]
    assert sm.split("|")[6].strip() == ""  # no "x conventional" for statmorph itself
    (cnn,) = [line for line in lines if line.startswith("| casnet CNN")]
    assert cnn.split("|")[4].strip() == "25.0" and cnn.split("|")[6].strip() == "1.2"
    (clean,) = [line for line in lines if line.startswith("| clean |")]
    # cold rates, cold speed-up, running-cluster rates and speed-up, memory growth
    assert (
        clean
        == "| clean | 11.0 | 16.0 | 1.45x | 20.0 | 39.0 | 1.95x | driver +5.0%, worker -1.0% |"
    )
    header = next(line for line in lines if line.startswith("| data stage"))
    assert header.count("|") == clean.count("|")
    # the page the docs publish: the same tables, written beside the JSON (issue 31)
    from casnet.bench.harness import write_report

    path = write_report(report, tmp_path / "b" / "results.json")
    page = (tmp_path / "b" / "all.md").read_text()
    assert json.loads(path.read_text())["cnn_ms"] == 4.0
    assert page.startswith("# `casnet benchmark all`") and "git commit" in page
    assert clean in page.splitlines()
