"""Benchmarks print figures (speed targets are checked by reading them, not by timed tests)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from casnet.benchmark import benchmark_measure, benchmark_pipeline, format_pipeline_report


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
    from casnet.benchmark import synthetic_stamps

    stamps = synthetic_stamps(3, size=61)
    assert stamps.shape == (3, 61, 61) and stamps.dtype == np.float32
    for s in stamps:  # the brightest pixel is within a few pixels of the centre
        y, x = np.unravel_index(np.argmax(s), s.shape)
        assert abs(y - 30) <= 5 and abs(x - 30) <= 5
